"""Admission on the shared ledger: a request reserves against every scope it is limited by (key, team,
tenant, and their per-model limits) at once; if one refuses, the holds the others took are given back.

The decisions are the pure ``stages.governance`` arithmetic; the ledger (``infra/ledger.py``) applies
them by compare-and-set. What comes out is the request's ``Admission`` (its holds and the tightest
rate-limit status) and, when refused, the typed error: 429 ``insufficient_quota``/``budget_exceeded``
naming the level and when its period resets, or 429 ``rate_limit_exceeded`` with ``retry_after_s``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from infra.ledger import Ledger
from schemas.errors import GatewayError, QuotaExceeded, RateLimited
from schemas.governance import Admission
from stages.governance.admission import Ask, Decision, admit, give_back
from stages.governance.draft import Draft
from stages.governance.estimate import Estimate
from stages.governance.scopes import Scope
from stages.governance.status import tightest

T = TypeVar("T")

HOLD_GRACE_S = 300.0
"""A hold outlives its request's deadline by this long before it lapses (settlement normally takes
milliseconds; a lapsed hold's request is no longer counted)."""


@dataclass(frozen=True, slots=True)
class Admitted:
    admission: Admission
    error: GatewayError | None = None


def refusal(decision: Decision) -> GatewayError:
    if decision.limit == "budget":
        return QuotaExceeded(decision.message())
    retry = decision.retry_after_s
    return RateLimited(decision.message(), retry_after_s=float(max(1, math.ceil(retry))) if retry is not None else None)


async def each(calls: list[Awaitable[T]]) -> list[T | BaseException]:
    """Every call's result or exception; one call is awaited directly (no tasks: the common case)."""
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except Exception as exc:  # noqa: BLE001 - returned like gather(return_exceptions=True) does
            return [exc]
    return list(await asyncio.gather(*calls, return_exceptions=True))


class Admitter:
    def __init__(self, ledger: Callable[[], Ledger[Draft]]) -> None:
        self._ledger = ledger

    async def admit(self, request_id: str, scopes: list[Scope], estimate: Estimate, deadline: float,
                    unpriced: bool = False) -> Admitted:
        ledger = self._ledger()
        ask = Ask(request_id=request_id, nusd=estimate.nusd, tokens=estimate.tokens,
                  expires_at=deadline + HOLD_GRACE_S)
        outcomes = await each([ledger.apply(s.key, partial(admit, scope=s, ask=ask)) for s in scopes])
        decisions = [o for o in outcomes if isinstance(o, Decision)]
        failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
        refused = next((d for d in decisions if not d.admitted), None)
        status = tightest(d.status for d in decisions)
        if failure is None and refused is None:
            return Admitted(Admission(scopes=[s.key for s in scopes], hold_nusd=ask.nusd, hold_tokens=ask.tokens,
                                      expires_at=ask.expires_at, unpriced=unpriced, ratelimit=status))
        held = [d.scope for d in decisions if d.admitted]
        if held:
            await each([ledger.apply(s.key, partial(give_back, request_id=request_id)) for s in held])
        if refused is None:
            assert failure is not None
            if isinstance(failure, GatewayError):
                return Admitted(Admission(ratelimit=status), failure)
            raise failure
        return Admitted(Admission(ratelimit=status, refused=refused.refused), refusal(refused))
