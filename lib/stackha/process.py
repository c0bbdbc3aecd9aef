"""Process control: pid files, the process table, start a daemon as a user, wait until a
condition holds, stop a process in time.

Used by the OCF agents, the workload modules (``stackha.services``) and the lab alike, so it
knows none of them: a failure raises :class:`ProcessError`, and each caller turns that into its
own error at its edge (an OCF agent's ``main()`` into OCF_ERR_GENERIC, the lab into a LabError
or ``stackha lab``'s error line).

Process state is read from ``/proc`` through a small :class:`ProcessTable` seam so tests can
hand in a fake one; signals go through the same seam.
"""

from __future__ import annotations

import os
import signal
import stat

from stackha.clock import Deadline
from stackha.runner import Spawn

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Callable, Optional, Protocol

    from stackha.runner import Runner


# How long a stop waits after SIGKILL for the kernel to reap the process: the share of the stop
# budget kept back from the graceful TERM phase.
KILL_RESERVE_S = 2.0
POLL_INTERVAL_S = 0.1


class ProcessError(Exception):
    """A process did not do what was waited for (a condition not reached in time, a process
    that outlived SIGKILL); the message says what, in one line."""


if TYPE_CHECKING:

    class ProcessTable(Protocol):
        def state(self, pid: int) -> Optional[str]:
            """The state letter (``R``, ``S``, ``Z`` …), or None if there is no such pid."""

        def name(self, pid: int) -> Optional[str]:
            """The process's command name (``/proc/PID/comm``), or None."""

        def children(self, pid: int) -> list[int]: ...

        def signal(self, pid: int, signum: int) -> None: ...

        def pids(self) -> list[int]:
            """Every process's pid."""

        def arguments(self, pid: int) -> list[str]:
            """The process's command line (``/proc/PID/cmdline``), [] if it has gone."""

        def local(self, pid: int) -> bool:
            """Whether the process sees the same files as this one (its mount namespace):
            only then does a path on its command line mean the same directory."""


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

    def pids(self) -> list[int]:
        return [int(entry) for entry in os.listdir(self.proc) if entry.isdigit()]

    def arguments(self, pid: int) -> list[str]:
        try:
            with open(f"{self.proc}/{pid}/cmdline", "rb") as handle:
                raw = handle.read()
        except OSError:
            return []
        return [word.decode("utf-8", "replace") for word in raw.split(b"\0")[:-1]]

    def local(self, pid: int) -> bool:
        try:
            return os.readlink(f"{self.proc}/{pid}/ns/mnt") == os.readlink(
                f"{self.proc}/self/ns/mnt"
            )
        except OSError:
            return False


def is_alive(table: ProcessTable, pid: int) -> bool:
    """Running and not a zombie (a zombie still passes ``kill -0``)."""
    state = table.state(pid)
    return state is not None and state not in ("Z", "X")


def read_pidfile(path: str) -> Optional[int]:
    """The pid in ``path``, or None when it is not a regular file holding a pid (missing,
    empty, a directory, a FIFO that would block the read, a name the kernel refuses)."""
    if not _regular_file(path):
        return None
    try:
        with open(path, "rb") as handle:
            words = handle.read(PIDFILE_MAX_BYTES + 1).split()
    except OSError:
        return None
    if not words or not _ascii_number(words[0]):
        return None
    return int(words[0])


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


def find_processes(table: ProcessTable, name: str, arguments: Sequence[str]) -> list[int]:
    """Live processes called ``name`` that have each of ``arguments`` as a whole word of their
    command line: how a stop finds its service when the pid file cannot say (a parameter
    naming the wrong file, a pid file removed by hand). ``arguments`` must identify this
    resource's instance (its data directory, its configuration file), never just the program;
    none at all finds nothing."""
    wanted = [word for word in arguments if word]
    if not wanted:
        return []
    found = []
    for pid in table.pids():
        # A container's mariadbd with the same --datadir is another directory: never ours.
        if table.name(pid) != name or not is_alive(table, pid) or not table.local(pid):
            continue
        words = table.arguments(pid)
        if all(word in words for word in wanted):
            found.append(pid)
    return sorted(found)


def stop_all(table: ProcessTable, pids: Sequence[int], deadline: Deadline, what: str) -> None:
    """``stop_process`` for each of ``pids``, in the one budget; raises :class:`ProcessError`
    if one survives."""
    for pid in pids:
        stop_process(table, pid, deadline, what=what)


def find_instance(
    table: ProcessTable, pidfile: str, name: str, arguments: Sequence[str]
) -> list[int]:
    """The processes of one service instance: the one its pid file names (when it is called
    ``name``) and any other ``find_processes`` finds. The pid file may be wrong, a directory,
    or gone; the command line is the second witness."""
    pid = running_pid(table, pidfile, name)
    found = set(find_processes(table, name, arguments))
    if pid is not None:
        found.add(pid)
    return sorted(found)


# A pid file holds a pid and a newline; anything bigger is not one.
PIDFILE_MAX_BYTES = 32


def _regular_file(path: str) -> bool:
    """A regular file (not a link, a directory, a device); False for any path that cannot be
    looked at (missing, a name too long, a component that is not a directory)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


def remove_stale_pidfile(table: ProcessTable, path: str, name: str) -> bool:
    """Remove ``path`` only when it is a pid file of ``name`` gone stale: a regular file holding
    nothing but a pid, whose process is gone or is another program. Anything else — a file that
    does not look like a pid file, a directory, a link, a pid file of ``name`` still running — is
    left where it is: a parameter naming the wrong file must never cost that file. Returns
    whether it removed ``path``."""
    if not _regular_file(path):
        return False
    try:
        with open(path, "rb") as handle:
            content = handle.read(PIDFILE_MAX_BYTES + 1)
    except OSError:
        return False
    words = content.split()
    if len(content) > PIDFILE_MAX_BYTES or len(words) != 1 or not _ascii_number(words[0]):
        return False
    pid = int(words[0])
    if is_alive(table, pid) and table.name(pid) == name:
        return False
    return _unlink(path)


def remove_own_file(path: str, first_line: str) -> bool:
    """Remove ``path`` only when it is a regular file that starts with ``first_line`` (the
    header the agent writes into its own files); returns whether it did."""
    if not _regular_file(path):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(first_line.encode()) + 1)
    except OSError:
        return False
    if not head.startswith(first_line.encode() + b"\n"):
        return False
    return _unlink(path)


def remove_stale_socket(path: str) -> bool:
    """Remove ``path`` only when it is a UNIX socket (a dead server's leftover); returns whether
    it did."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except (OSError, ValueError):
        return False
    return _unlink(path)


def _ascii_number(word: bytes) -> bool:
    return 0 < len(word) <= 10 and all(48 <= byte <= 57 for byte in word)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except OSError:  # gone already, or not ours to remove after all
        return False
    return True


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
    """Poll ``ready`` until it is true; raise :class:`ProcessError` naming ``what`` at the
    deadline. An exception ``ready`` raises goes through to the caller."""
    while True:
        if ready():
            return
        if deadline.expired():
            raise ProcessError(f"{what} not reached within {deadline.seconds:.0f}s")
        deadline.sleep(interval)


def stop_process(
    table: ProcessTable,
    pid: int,
    deadline: Deadline,
    *,
    what: str = "process",
    reserve: float = KILL_RESERVE_S,
) -> None:
    """TERM, wait, then KILL before ``deadline`` runs out; raise :class:`ProcessError` if the
    process survives.

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
        raise ProcessError(f"{what} (pid {pid}) still running after SIGKILL")
