"""How long a monitor waits for the service it checks before it calls the service failed,
decided once for every agent that asks its service over a network or a local socket.

A slow answer is not a dead service. Pacemaker gives each operation a timeout (the op's
``timeout``, ``OCF_RESKEY_CRM_meta_timeout``) and restarts the resource when a monitor fails.
A fixed limit per request far below it (5 s in a 60 s operation) failed nova-api's depth-20
check on two nodes of three under a load average of 6 on 2 cores (issue 14): the service
answered, in about 6.5 s, and was restarted — more load on a loaded node. So:

- a check may wait for the operation's whole remaining time, less a reserve kept to report the
  failure and exit before Pacemaker's own timer fires (:func:`reserve_s`);
- the requests of one operation share that time (a token, then a request with it): every
  budget of a call ends at the same moment, however many are made;
- what each request waited is logged, as a warning when it was slower than ``slow_after_s`` (the
  API and HAProxy agents' ``check_timeout``); a hung peer still fails the monitor, inside the
  operation's timeout, with the service's reason naming what did not answer and for how long.
"""

from __future__ import annotations

# typing and the seams are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    from stackha.clock import Deadline
    from stackha.ocf.log import AgentLog

    _Answer = TypeVar("_Answer")

# A request slower than this is logged as a warning (agents without a check_timeout parameter).
SLOW_AFTER_S = 5.0
# The reserve: a share of the operation's timeout, within bounds, and never more than half of it.
# It pays for what is not measured (the interpreter's start before the call's deadline is set)
# and for reporting: the exit reason, the log line (syslog may be slow on a loaded node), exit.
RESERVE_SHARE = 0.1
RESERVE_MIN_S = 2.0
RESERVE_MAX_S = 5.0
# What a request gets when the ones before it spent the budget: asked anyway, briefly (it
# comes out of the reserve), rather than failed unasked.
LAST_CHANCE_S = 0.5


def reserve_s(timeout_s: float) -> float:
    """Seconds of an operation's ``timeout_s`` kept back from its checks: 10 %, at least 2 s and
    at most 5 s (60 s → 5 s, 30 s → 3 s, 20 s → 2 s), never more than half of it."""
    return min(max(RESERVE_MIN_S, RESERVE_SHARE * timeout_s), RESERVE_MAX_S, timeout_s / 2)


class CheckBudget:
    """The time a call's checks share until ``deadline``; each slow wait logged to ``log``.

    Made by :meth:`stackha.ocf.agent.Call.check_budget`; services take it as a
    :class:`stackha.clock.Waits`.
    """

    def __init__(self, deadline: Deadline, log: AgentLog, slow_after_s: float = SLOW_AFTER_S):
        self.deadline = deadline
        self.log = log
        self.slow_after_s = slow_after_s

    def timeout(self) -> float:
        """Seconds the next request may wait: what is left of the budget."""
        return max(self.deadline.remaining(), LAST_CHANCE_S)

    def timed(self, what: str, wait: Callable[[float], _Answer]) -> _Answer:
        """``wait(seconds)`` with what is left of the budget; how long it took is logged under
        ``what`` ("GET /v2.1/flavors"): a warning past ``slow_after_s``, else a debug line.
        Returns its result; what it raises goes through unchanged."""
        clock = self.deadline.clock
        seconds = self.timeout()
        started = clock.monotonic()
        try:
            answer = wait(seconds)
        except Exception:
            waited = clock.monotonic() - started
            if waited >= self.slow_after_s:
                self.log.info(
                    f"{what}: no good answer after {waited:.1f} s (budget {seconds:.0f} s)"
                )
            raise
        waited = clock.monotonic() - started
        line = f"{what} answered after {waited:.1f} s"
        if waited >= self.slow_after_s:
            self.log.warning(
                f"{line}, slower than {self.slow_after_s:g} s (budget {seconds:.0f} s): slow, "
                "not failed"
            )
        else:
            self.log.debug(f"{line} (budget {seconds:.0f} s)")
        return answer
