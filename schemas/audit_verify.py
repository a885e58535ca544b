"""Verifying the audit chain (``schemas/audit.py``): recompute every row's hash and link, name what broke.

``verify(rows)`` takes the rows of ``audit_log`` in ``seq`` order (several rows may share a seq) and
reports, in chain order:

- ``altered``: a row whose ``hash`` is not the hash of its own columns (a column changed after it
  was written);
- ``missing``: seqs absent from the chain (rows deleted), or a chain that ends before the latest
  anchor (rows deleted at the tail);
- ``inserted``: a second row with a seq already taken, or a row whose ``prev_hash`` is not the
  previous row's ``hash`` (a row put in or replaced with its hash recomputed).

Without ``trust_first`` the chain must start at seq 1 from ``GENESIS``; with it (``--since``) the first
row's ``prev_hash`` is taken as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from typing import Literal

from schemas.audit import GENESIS, AuditRow, row_hash

ProblemKind = Literal["altered", "missing", "inserted"]


@dataclass(frozen=True, slots=True)
class Problem:
    kind: ProblemKind
    seq: int
    """The first seq concerned."""
    message: str
    last_seq: int | None = None
    """For ``missing``: the last seq of the missing run."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The latest (seq, hash) the sink wrote to ``gateway_events``: the chain must still reach it."""

    seq: int
    hash: str
    ts: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    checked: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _pick(group: list[AuditRow], prev_hash: str, next_links: set[str]) -> AuditRow:
    """Of rows sharing a seq, the one that belongs to the chain: the best by (the next seq links to it,
    it links to the previous seq, it is unaltered); the first of equals."""
    def score(row: AuditRow) -> tuple[bool, bool, bool]:
        return row.hash in next_links, row.prev_hash == prev_hash, row_hash(row) == row.hash

    return max(group, key=score)


def verify(rows: list[AuditRow], *, trust_first: bool = False, anchor: Anchor | None = None) -> Report:
    """See the module docstring. ``rows`` must be sorted by ``seq``."""
    problems: list[Problem] = []
    expected_seq: int | None = None if trust_first else 1
    prev_hash: str | None = None if trust_first else GENESIS
    by_seq: dict[int, str] = {}
    last: AuditRow | None = None
    groups = [list(members) for _, members in groupby(rows, key=lambda r: r.seq)]
    for index, group in enumerate(groups):
        seq = group[0].seq
        if expected_seq is not None and seq > expected_seq:
            problems.append(Problem("missing", expected_seq, _missing(expected_seq, seq - 1), seq - 1))
            prev_hash = None  # nothing to link to across a gap
        link = prev_hash if prev_hash is not None else group[0].prev_hash
        next_links = {r.prev_hash for r in groups[index + 1]} if index + 1 < len(groups) else set()
        row = _pick(group, link, next_links)
        for extra in group:
            if extra is not row:
                problems.append(Problem("inserted", seq, f"seq {seq} appears more than once: a row was inserted "
                                        f"(entry {extra.entry_id!r}, hash {extra.hash[:16]}…)"))
        if row.prev_hash != link:
            problems.append(Problem("inserted", seq, f"seq {seq} does not follow seq {seq - 1}: its prev_hash "
                                    f"{row.prev_hash[:16]}… is not the hash of seq {seq - 1} ({link[:16]}…); a row "
                                    f"was inserted or replaced, or seq {seq - 1} was rewritten with a new hash"))
        if row_hash(row) != row.hash:
            problems.append(Problem("altered", seq, f"seq {seq} was altered: its columns no longer hash to its "
                                    f"stored hash {row.hash[:16]}…"))
        by_seq[seq] = row.hash
        prev_hash, expected_seq, last = row.hash, seq + 1, row
    if anchor is not None and (last is not None or not trust_first):  # nothing read after --since: no end to check
        problems.extend(_check_anchor(anchor, by_seq, last))
    return Report(checked=len(by_seq), first_seq=rows[0].seq if rows else None,
                  last_seq=last.seq if last else None, last_hash=last.hash if last else None, problems=problems)


def _missing(first: int, last: int) -> str:
    which = f"seq {first}" if first == last else f"seqs {first}–{last}"
    return f"{which} missing: rows were deleted from audit_log"


def _check_anchor(anchor: Anchor, by_seq: dict[int, str], last: AuditRow | None) -> list[Problem]:
    when = f" (anchored {anchor.ts})" if anchor.ts else ""
    if last is None or anchor.seq > last.seq:
        first = last.seq + 1 if last is not None else 1
        return [Problem("missing", first, f"the chain ends at seq {last.seq if last else 0} but the latest anchor "
                        f"is seq {anchor.seq}{when}: {_missing(first, anchor.seq)}", anchor.seq)]
    stored = by_seq.get(anchor.seq)
    if stored is not None and stored != anchor.hash:
        return [Problem("altered", anchor.seq, f"seq {anchor.seq} does not carry the anchored hash "
                        f"{anchor.hash[:16]}…{when}: the chain was rewritten from there on")]
    return []
