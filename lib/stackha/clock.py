"""Time as a seam: a monotonic clock, sleeping, and deadlines measured on it.

Every wait in stackha is bounded by a :class:`Deadline`, so a test can hand the code a fake
clock and make "wait up to 300 s" take no time.
"""

from __future__ import annotations

import time

# typing is imported for the type checker only: agents start fast (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Protocol, TypeVar

    _Answer = TypeVar("_Answer")

    class Clock(Protocol):
        """What the library needs of time."""

        def monotonic(self) -> float: ...

        def sleep(self, seconds: float) -> None: ...

    class Waits(Protocol):
        """Time that a sequence of waits shares (the requests of one monitor): each wait gets
        what the earlier ones left, and how long it took is recorded under ``what``
        (stackha.ocf.budget.CheckBudget is the agents' one)."""

        def timed(self, what: str, wait: Callable[[float], _Answer]) -> _Answer:
            """``wait(seconds)``: the seconds it may take; its result, or what it raised."""
            ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Deadline:
    """A point in time on a monotonic clock that work must finish before."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds
        self._end = clock.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._end - self.clock.monotonic())

    def expired(self) -> bool:
        return self.clock.monotonic() >= self._end

    def sub(self, reserve: float) -> Deadline:
        """A deadline that ends ``reserve`` seconds before this one (for a later step's share)."""
        return Deadline(self.clock, max(0.0, self.remaining() - reserve))

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, but never past the deadline."""
        self.clock.sleep(min(seconds, self.remaining()))
