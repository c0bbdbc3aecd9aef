"""Entering and creating the Linux namespaces lab nodes and the lab switch live in."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from stackha.process import is_alive, wait_until
from stackha.runner import Spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Optional, TypeVar

    T = TypeVar("T")

    from stackha.clock import Deadline
    from stackha.process import ProcessTable
    from stackha.runner import Result, Runner

# The programs the lab starts to hold namespaces and enter them: the only processes it ends.
HOLDERS = ("tini", "unshare", "nsenter")
NSENTER = "/usr/bin/nsenter"
CLONE_NEWNET = 0x40000000
UNSHARE = "/usr/bin/unshare"
TINI = "/usr/bin/tini"


class LabError(Exception):
    """A lab step failed; the message says which and why, in one line."""


def missing_programs(required: Mapping[str, str], system: Path = Path("/")) -> list[str]:
    """``package (program)`` of each program of ``required`` ({absolute path: the Debian
    package that brings it}) that the system at ``system`` cannot run, in ``required``'s
    order: what a refusal names for the operator to install."""
    return [
        f"{package} ({program})"
        for program, package in required.items()
        if not os.access(system / program.lstrip("/"), os.X_OK)
    ]


class NamespaceRunner:
    """A runner whose commands run inside the namespaces of the process ``init_pid``, in the
    directory ``wd`` when given (nsenter opens it before entering the namespaces: a path the
    host sees)."""

    def __init__(
        self, runner: Runner, init_pid: int, namespaces: str = "nmup", wd: Optional[str] = None
    ) -> None:
        self.runner = runner
        self.init_pid = init_pid
        self.flags = [f"-{flag}" for flag in namespaces]
        if wd is not None:
            self.flags.append(f"--wd={wd}")

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return [NSENTER, "-t", str(self.init_pid), *self.flags, "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        return self.runner.run(self.wrap(argv), timeout=timeout, stdin=stdin, env=env, check=check)

    def spawn(self, spec: Spawn) -> int:
        return self.runner.spawn(
            Spawn(
                argv=tuple(self.wrap(spec.argv)),
                user=spec.user,
                group=spec.group,
                cwd=spec.cwd,
                output_path=spec.output_path,
                env=spec.env,
            )
        )


def start_init(
    runner: Runner,
    processes: ProcessTable,
    unshare_flags: Sequence[str],
    deadline: Deadline,
    log_path: str,
) -> tuple[int, int]:
    """Start ``tini`` as the init of new namespaces; returns (unshare's pid, init's host pid).

    tini reaps what is re-parented to it: a bare ``sleep`` as init would leave zombies.
    """
    holder = runner.spawn(
        Spawn(
            argv=(UNSHARE, *unshare_flags, "--", TINI, "-s", "--", "/bin/sleep", "infinity"),
            output_path=log_path,
        )
    )
    found: list[int] = []

    def started() -> bool:
        found[:] = processes.children(holder)
        return bool(found) and processes.name(found[0]) == "tini"

    try:
        wait_until(started, deadline, "namespace init started", interval=0.01)
    except BaseException:
        end_processes(processes, [holder], deadline)
        raise
    return holder, found[0]


def end_processes(
    processes: ProcessTable,
    pids: Sequence[int],
    deadline: Deadline,
    names: Sequence[str] = HOLDERS,
) -> None:
    """SIGKILL each pid that is still one of the programs ``names`` and wait until all are gone.

    A pid recorded earlier may since belong to something else (after a host reboot): only the
    programs the lab starts are ever signalled. Killing a namespace's init (tini) makes the
    kernel kill every process in its PID namespace.
    """

    def ours(pid: int) -> bool:
        name = processes.name(pid) or ""
        return any(name == n or name.startswith(n) for n in names)

    targets = [pid for pid in pids if pid and ours(pid)]
    for pid in targets:
        processes.signal(pid, signal.SIGKILL)
    wait_until(
        lambda: not any(is_alive(processes, pid) and ours(pid) for pid in targets),
        deadline,
        "lab processes gone",
        interval=0.02,
    )


def call_in_network_of(pid: int, function: Callable[[], T]) -> T:
    """``function()`` run in a thread of its own that first enters the network namespace of
    ``pid``; its result, or its exception raised here. A network namespace belongs to a thread,
    so this process talks to the lab's addresses with no process of its own and its other
    threads stay where they are; the thread (and its hold on the namespace) ends with the call.
    """
    import ctypes
    import os
    import threading

    outcome: list[object] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            descriptor = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
            try:
                if libc.setns(descriptor, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise LabError(f"setns into the network of pid {pid}: {os.strerror(errno)}")
            finally:
                os.close(descriptor)
            outcome.append(function())
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread as is
            failure.append(err)

    thread = threading.Thread(target=work, name=f"in-network-of-{pid}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]  # type: ignore[return-value]
