"""The audit subjects: where an identity publishes, and the identity a subject names."""

from __future__ import annotations

import pytest

from schemas import subjects


def test_an_identity_publishes_on_its_own_subject_under_the_streams_wildcard() -> None:
    assert subjects.audit_subject("op-alice") == "gw.audit.by.op-alice"
    assert subjects.audit_subject("admin").startswith(subjects.AUDIT_ALL.removesuffix(">"))
    assert subjects.AUDIT_SUBJECTS == ("gw.audit", "gw.audit.>")


@pytest.mark.parametrize(("subject", "identity"), [
    ("gw.audit.by.op-alice", "op-alice"), ("gw.audit.by.ingress", "ingress"), ("gw.audit", None),
    ("gw.audit.by", None), ("gw.audit.by.", None), ("gw.audit.by.a.b", None), ("gw.audit.x", None),
    ("gw.evt.by.admin", None),
])
def test_the_identity_a_subject_names(subject: str, identity: str | None) -> None:
    assert subjects.audit_identity(subject) == identity
    if identity is not None:
        assert subjects.audit_subject(identity) == subject
