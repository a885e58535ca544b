"""The import rules of ARCHITECTURE.md §1, checked on every module: imports run one way.

- ``schemas/`` imports nothing else of ours;
- ``stages/`` imports only ``schemas/`` (pure logic: no broker, no HTTP edge, no I/O);
- ``ingress/`` never imports ``stages/`` or ``workers/`` (it reaches them only through NATS);
- ``infra/`` points down: only the composition root (``infra/bootstrap.py``) imports ``workers/``,
  ``ingress/`` or ``stages/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("schemas", "stages", "ingress", "workers", "infra")
ALLOWED: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "stages": {"schemas", "stages"},
    "ingress": {"schemas", "infra", "ingress"},
    "infra": {"schemas", "infra"},
    "workers": set(OURS),
}
COMPOSITION_ROOTS = {"infra/bootstrap.py"}
EXCEPTIONS: dict[str, set[str]] = {
    # `gateway replay --dry-run` plans with the routing stage's own pure Router (and the policy stage's
    # access merge): a copy of that logic in infra/ would drift from what the chain does
    "infra/operator/replay_plan.py": {"stages"},
    # `gateway replay` resends an Anthropic Messages request: the recorded body is canonical, and the
    # Anthropic adapter's pure translation turns it back into the Messages shape the original came in
    "infra/operator/replay_request.py": {"stages"},
}  # a module needing one says so here, with its reason


def imported_packages(path: Path) -> set[str]:
    """Our top-level packages that ``path`` imports, at any depth (type-only imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(top for name in names if (top := name.split(".")[0]) in OURS)
    return found


def modules() -> list[Path]:
    return sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_one_way(path: Path) -> None:
    relative = str(path.relative_to(ROOT))
    if relative in COMPOSITION_ROOTS:
        return
    package = relative.split("/")[0]
    wrong = imported_packages(path) - ALLOWED[package] - EXCEPTIONS.get(relative, set())
    assert not wrong, f"{relative} ({package}/) imports {sorted(wrong)}; see ARCHITECTURE.md §1"


def test_the_rules_see_a_wrong_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from workers.runtime import StageRuntime\nimport schemas.envelope\n")
    assert imported_packages(module) == {"workers", "schemas"}
