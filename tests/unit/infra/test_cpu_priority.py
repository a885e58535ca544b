"""Reading a process's autogroup niceness from the kernel's file."""

from __future__ import annotations

from pathlib import Path

from infra.cpu_priority import autogroup_niceness


def test_an_autogroup_reads_its_niceness(tmp_path: Path) -> None:
    (tmp_path / "autogroup").write_text("/autogroup-9661 nice 19\n")
    assert autogroup_niceness(tmp_path / "autogroup") == 19


def test_the_kernels_default_autogroup_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "autogroup").write_text("")  # a session made before autogroups were on (a container's first)
    assert autogroup_niceness(tmp_path / "autogroup") is None


def test_a_kernel_without_autogroups_reads_as_none(tmp_path: Path) -> None:
    assert autogroup_niceness(tmp_path / "missing") is None
