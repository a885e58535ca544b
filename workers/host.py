"""``python -m workers.host [STAGE ...]``: several stage workers in one process (default: all five).

Each stage is still its own subscriber on its own subject and queue group; hosting them together saves
the memory of a Python interpreter and the wake-ups of a process per stage on small machines. Two hosts
(``gateway up``'s default) give every stage two replicas: a host that dies never stops the chain.
"""

from __future__ import annotations

import sys

from workers.app import STAGES, main


def run(argv: list[str]) -> None:
    stages = argv or list(STAGES)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    main("stages", stages)


if __name__ == "__main__":
    run(sys.argv[1:])
