"""The circuit breaker of one target, pure: states, transitions and admission decisions.

closed ──(window: ≥ min_requests calls and failure_count / failure_rate reached)──▶ open
open ──(cooldown passed and a request claims a probe slot)──▶ half_open
half_open ──(half_open_probes probes succeeded)──▶ closed
half_open ──(a probe failed)──▶ open, with the cooldown doubled (up to ``MAX_COOLDOWN_S``)

The state is data (``BreakerState``, stored as JSON in the GW_BREAKERS key-value bucket, shared by
every routing replica); each function here takes the current state and returns the next one (a
``Transition``) or ``None``. The caller applies it with compare-and-set, so when several replicas
reach the same decision exactly one of them writes it (``workers/health_monitor.py``).

Times are wall-clock seconds (``time.time()``): the state is read by replicas on other hosts.

Probe slots: in half_open at most ``half_open_probes`` requests are let through. A claimed slot whose
outcome never arrives (the request went to another target first, a worker crashed) is free again
after ``probe_timeout`` = max(cooldown_s, 30 s). A probe outcome settles the oldest claim: ``ok``
counts towards closing, ``neutral`` (the request's own fault) only frees the slot, ``fail`` reopens.
Outcomes carry an id, and a state remembers the ids it has settled, so a replica that applies the
same outcome twice (a compare-and-set retry) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from schemas.config import CircuitBreaker
from schemas.events import ControlAttrs
from stages.health import Outcome

State = Literal["closed", "open", "half_open"]
Decision = Literal["allow", "claim", "skip"]

MAX_COOLDOWN_S = 300.0
"""Cap of the cooldown growth: each reopening from half_open doubles it, up to
max(cooldown_s, MAX_COOLDOWN_S); closing resets it to cooldown_s."""
MIN_PROBE_TIMEOUT_S = 30.0
SETTLED_KEEP = 32


@dataclass(frozen=True)
class BreakerState:
    state: State = "closed"
    since: float = 0.0
    """When it entered this state (wall clock)."""
    opens: int = 0
    """Consecutive openings without a close in between: sets the cooldown."""
    cooldown_s: float = 0.0
    """The cooldown in force while open."""
    claims: tuple[float, ...] = ()
    """half_open: when each probe still awaited was claimed, oldest first."""
    passed: int = 0
    """half_open: probes that succeeded."""
    settled: tuple[str, ...] = ()
    """half_open: ids of the probe outcomes already applied."""

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "since": self.since, "opens": self.opens, "cooldown_s": self.cooldown_s,
                "claims": list(self.claims), "passed": self.passed, "settled": list(self.settled)}

    @classmethod
    def from_dict(cls, data: Any) -> BreakerState:
        """A stored value; anything unreadable is ``closed`` (a breaker must never lock a target out
        because of a bad value)."""
        if not isinstance(data, dict) or data.get("state") not in ("closed", "open", "half_open"):
            return CLOSED
        try:
            return cls(state=data["state"], since=float(data.get("since", 0.0)), opens=int(data.get("opens", 0)),
                       cooldown_s=float(data.get("cooldown_s", 0.0)),
                       claims=tuple(float(c) for c in data.get("claims", ())), passed=int(data.get("passed", 0)),
                       settled=tuple(str(s) for s in data.get("settled", ())))
        except (TypeError, ValueError):
            return CLOSED


CLOSED = BreakerState()


@dataclass(frozen=True)
class Transition:
    before: BreakerState
    after: BreakerState
    reason: str = ""
    attrs: ControlAttrs = ControlAttrs()

    @property
    def changes_state(self) -> bool:
        """A state change (an event for ClickHouse), as opposed to a probe claimed or settled."""
        return self.before.state != self.after.state


def cooldown_for(opens: int, cfg: CircuitBreaker) -> float:
    """The cooldown after the ``opens``-th consecutive opening: cooldown_s, doubled each time."""
    cap = max(cfg.cooldown_s, MAX_COOLDOWN_S)
    return float(min(cfg.cooldown_s * 2.0 ** min(max(opens - 1, 0), 32), cap))


def probe_timeout(cfg: CircuitBreaker) -> float:
    return max(cfg.cooldown_s, MIN_PROBE_TIMEOUT_S)


def failure_reason(ok: int, fail: int, cfg: CircuitBreaker) -> str | None:
    """Why a closed breaker with these window counts must open, or ``None``."""
    total = ok + fail
    if total < cfg.min_requests or fail == 0:
        return None
    if cfg.failure_count is not None and fail >= cfg.failure_count:
        return f"failure_count {fail} over {total} calls in {cfg.window_s:g} s"
    rate = fail / total
    if rate >= cfg.failure_rate:
        return f"failure_rate {rate:.2f} over {total} calls in {cfg.window_s:g} s"
    return None


def trip(state: BreakerState, ok: int, fail: int, now: float, cfg: CircuitBreaker) -> Transition | None:
    """closed → open when the window's counts reach the threshold."""
    if state.state != "closed":
        return None
    reason = failure_reason(ok, fail, cfg)
    if reason is None:
        return None
    cooldown = cooldown_for(1, cfg)
    after = BreakerState(state="open", since=now, opens=1, cooldown_s=cooldown)
    return Transition(state, after, reason, ControlAttrs(ok=ok, fail=fail, window_s=cfg.window_s,
                                                          cooldown_s=cooldown, opens=1))


def live_claims(state: BreakerState, now: float, cfg: CircuitBreaker) -> tuple[float, ...]:
    timeout = probe_timeout(cfg)
    return tuple(c for c in state.claims if now - c < timeout)


def admission(state: BreakerState, now: float, cfg: CircuitBreaker) -> tuple[Decision, float | None]:
    """What a request may do with this target, and for ``skip`` when to try again (``None``: a probe
    is under way, unknown). ``claim`` means: take a probe slot with ``claim`` (compare-and-set)."""
    if state.state == "closed":
        return "allow", None
    if state.state == "open":
        remaining = state.since + state.cooldown_s - now
        return ("skip", remaining) if remaining > 0 else ("claim", None)
    if cfg.half_open_probes - state.passed - len(live_claims(state, now, cfg)) > 0:
        return "claim", None
    return "skip", None


def claim(state: BreakerState, now: float, cfg: CircuitBreaker) -> Transition | None:
    """Take a probe slot: open → half_open (the first probe), or one more slot while half_open
    (claims older than the probe timeout are dropped, so their slots are taken again)."""
    decision, _ = admission(state, now, cfg)
    if decision != "claim":
        return None
    if state.state == "open":
        after = replace(state, state="half_open", since=now, claims=(now,), passed=0, settled=())
        reason = f"cooldown {state.cooldown_s:g} s passed, probing"
        return Transition(state, after, reason, ControlAttrs(cooldown_s=state.cooldown_s, opens=state.opens,
                                                              probes=cfg.half_open_probes))
    after = replace(state, claims=(*live_claims(state, now, cfg), now))
    return Transition(state, after, "probe claimed")


def settle(state: BreakerState, outcome: Outcome, probe_id: str, now: float, cfg: CircuitBreaker) -> Transition | None:
    """Apply one probe's outcome. Outside half_open, or already applied, it changes nothing."""
    if state.state != "half_open" or probe_id in state.settled:
        return None
    if outcome == "fail":
        opens = state.opens + 1
        cooldown = cooldown_for(opens, cfg)
        after = BreakerState(state="open", since=now, opens=opens, cooldown_s=cooldown)
        return Transition(state, after, f"probe failed, cooling down {cooldown:g} s",
                          ControlAttrs(passed=state.passed, cooldown_s=cooldown, opens=opens))
    claims = state.claims[1:]
    settled = (*state.settled, probe_id)[-SETTLED_KEEP:]
    if outcome == "neutral":
        return Transition(state, replace(state, claims=claims, settled=settled), "probe inconclusive")
    passed = state.passed + 1
    if passed >= cfg.half_open_probes:
        after = BreakerState(state="closed", since=now)
        return Transition(state, after, f"{passed} of {cfg.half_open_probes} probes succeeded",
                          ControlAttrs(passed=passed, opens=state.opens))
    return Transition(state, replace(state, claims=claims, passed=passed, settled=settled), "probe succeeded")
