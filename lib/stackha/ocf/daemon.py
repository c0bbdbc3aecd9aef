"""Running a daemon for an agent: pid files, start as a user, wait until ready, stop in time.

Process state is read from ``/proc`` through a small :class:`ProcessTable` seam so tests can
hand in a fake one; signals go through the same seam.
"""

from __future__ import annotations

import os
import signal

from stackha.clock import Deadline
from stackha.ocf.status import GenericError
from stackha.runner import Spawn

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Protocol

    from stackha.runner import Runner


# How long a stop waits after SIGKILL for the kernel to reap the process: the share of the stop
# budget kept back from the graceful TERM phase.
KILL_RESERVE_S = 2.0
POLL_INTERVAL_S = 0.1


if TYPE_CHECKING:

    class ProcessTable(Protocol):
        def state(self, pid: int) -> Optional[str]:
            """The state letter (``R``, ``S``, ``Z`` …), or None if there is no such pid."""

        def name(self, pid: int) -> Optional[str]:
            """The process's command name (``/proc/PID/comm``), or None."""

        def children(self, pid: int) -> list[int]: ...

        def signal(self, pid: int, signum: int) -> None: ...


class ProcTable:
    """The real process table, read from /proc."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc

    def state(self, pid: int) -> Optional[str]:
        try:
            with open(f"{self.proc}/{pid}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return None
        # The command name is in parentheses and may itself contain ") ": split at the last one.
        return text.rsplit(")", 1)[1].split()[0]

    def name(self, pid: int) -> Optional[str]:
        try:
            with open(f"{self.proc}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                return handle.read().strip()
        except OSError:
            return None

    def children(self, pid: int) -> list[int]:
        try:
            with open(f"{self.proc}/{pid}/task/{pid}/children", encoding="ascii") as handle:
                return [int(word) for word in handle.read().split()]
        except OSError:
            return []

    def signal(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def is_alive(table: ProcessTable, pid: int) -> bool:
    """Running and not a zombie (a zombie still passes ``kill -0``)."""
    state = table.state(pid)
    return state is not None and state not in ("Z", "X")


def read_pidfile(path: str) -> Optional[int]:
    """The pid in ``path``, or None when the file is missing, empty or not a number."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            text = handle.read().split()
    except OSError:
        return None
    if not text or not text[0].isdigit():
        return None
    return int(text[0])


def running_pid(table: ProcessTable, pidfile: str, name: Optional[str] = None) -> Optional[int]:
    """The live process named in ``pidfile`` (and called ``name``, if given), else None.

    Checking the name guards against a stale pid file whose number was reused by another process.
    """
    pid = read_pidfile(pidfile)
    if pid is None or not is_alive(table, pid):
        return None
    if name is not None and table.name(pid) != name:
        return None
    return pid


def remove_stale_pidfile(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def start_daemon(
    runner: Runner,
    argv: list[str],
    *,
    user: Optional[str] = None,
    pidfile: Optional[str] = None,
    output_path: Optional[str] = None,
    env: Optional[dict[str, str]] = None,
) -> int:
    """Start ``argv`` in its own session as ``user``, with ``env`` added to the runner's clean
    environment; write ``pidfile`` when given. Returns the pid.

    For programs that stay in the foreground; a program that daemonizes itself and writes its own
    pid file is started with ``runner.run`` instead.
    """
    pid = runner.spawn(Spawn(argv=tuple(argv), user=user, output_path=output_path, env=env))
    if pidfile:
        directory = os.path.dirname(pidfile)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(pidfile, "w", encoding="ascii") as handle:
            handle.write(f"{pid}\n")
    return pid


def wait_until(
    ready: Callable[[], bool],
    deadline: Deadline,
    what: str,
    interval: float = POLL_INTERVAL_S,
) -> None:
    """Poll ``ready`` until it is true; raise GenericError naming ``what`` at the deadline."""
    while True:
        if ready():
            return
        if deadline.expired():
            raise GenericError(f"{what} not reached within {deadline.seconds:.0f}s")
        deadline.sleep(interval)


def stop_process(
    table: ProcessTable,
    pid: int,
    deadline: Deadline,
    *,
    what: str = "process",
    reserve: float = KILL_RESERVE_S,
) -> None:
    """TERM, wait, then KILL before ``deadline`` runs out; raise if the process survives.

    The graceful phase gets the whole budget but ``reserve`` seconds, which are kept for KILL.
    """
    if not is_alive(table, pid):
        return
    table.signal(pid, signal.SIGTERM)
    graceful = deadline.sub(reserve)
    while not graceful.expired():
        if not is_alive(table, pid):
            return
        graceful.sleep(POLL_INTERVAL_S)
    if not is_alive(table, pid):
        return
    table.signal(pid, signal.SIGKILL)
    while not deadline.expired():
        if not is_alive(table, pid):
            return
        deadline.sleep(POLL_INTERVAL_S)
    if is_alive(table, pid):
        raise GenericError(f"{what} (pid {pid}) still running after SIGKILL")
