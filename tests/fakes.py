"""Fakes at the runner/clock/process boundary: they hold exactly what is expected."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from stackha.runner import CommandError, Result, Spawn


@dataclass
class Expected:
    argv: tuple[str, ...]
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    stdin: Optional[str] = None


class FakeRunner:
    """Plays back expected commands in order; anything else fails the test.

    Use ``expect(argv, ...)`` for each command, then ``assert_done()`` (the ``fake_runner``
    fixture does it for you) so a leftover expectation fails too.
    """

    def __init__(self) -> None:
        self.expected: list[Expected] = []
        self.spawned: list[Spawn] = []
        self.next_pid = 4000

    def expect(
        self,
        argv: Sequence[str],
        returncode: int = 0,
        stdout: str = "",
        stderr: str = "",
        stdin: Optional[str] = None,
    ) -> None:
        self.expected.append(Expected(tuple(argv), returncode, stdout, stderr, stdin))

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        assert timeout > 0, f"no time budget for {argv}"
        assert self.expected, f"unexpected command: {list(argv)}"
        want = self.expected.pop(0)
        assert tuple(argv) == want.argv, f"expected {list(want.argv)}, got {list(argv)}"
        assert stdin == want.stdin, f"stdin for {argv[0]}: expected {want.stdin!r}, got {stdin!r}"
        result = Result(tuple(argv), want.returncode, want.stdout, want.stderr)
        if check and not result.ok:
            raise CommandError(f"{argv[0]} failed (exit {result.returncode})", result)
        return result

    def spawn(self, spec: Spawn) -> int:
        self.spawned.append(spec)
        self.next_pid += 1
        return self.next_pid

    def assert_done(self) -> None:
        assert not self.expected, f"expected commands never ran: {[e.argv for e in self.expected]}"


class FakeClock:
    """Time that passes only when the code sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


@dataclass
class FakeProcess:
    name: str
    state: str = "S"
    children: list[int] = field(default_factory=list)
    # Signals after which the process exits, and how many seconds later.
    dies_on: dict[int, float] = field(default_factory=dict)


class FakeProcessTable:
    """A process table whose processes die on the signals they are told to, on a fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.processes: dict[int, FakeProcess] = {}
        self.signals: list[tuple[int, int, float]] = []
        self._deaths: dict[int, float] = {}

    def add(self, pid: int, process: FakeProcess) -> None:
        self.processes[pid] = process

    def _reap(self) -> None:
        for pid, when in list(self._deaths.items()):
            if self.clock.now >= when:
                self.processes.pop(pid, None)
                del self._deaths[pid]

    def state(self, pid: int) -> Optional[str]:
        self._reap()
        process = self.processes.get(pid)
        return process.state if process else None

    def name(self, pid: int) -> Optional[str]:
        self._reap()
        process = self.processes.get(pid)
        return process.name if process else None

    def children(self, pid: int) -> list[int]:
        self._reap()
        process = self.processes.get(pid)
        return [c for c in process.children if c in self.processes] if process else []

    def signal(self, pid: int, signum: int) -> None:
        self._reap()
        self.signals.append((pid, signum, self.clock.now))
        process = self.processes.get(pid)
        if process is None:
            return
        if signum in process.dies_on:
            when = self.clock.now + process.dies_on[signum]
            self._deaths[pid] = min(when, self._deaths.get(pid, when))
        elif signum == signal.SIGKILL:
            self._deaths[pid] = self.clock.now
