"""Process control (stackha.process) on real processes: start as a user with a pid file,
stop in time."""

from __future__ import annotations

import os
import pwd
import sys
import time

from stackha.clock import Deadline, SystemClock
from stackha.process import (
    ProcTable,
    is_alive,
    read_pidfile,
    running_pid,
    start_daemon,
    stop_process,
    wait_until,
)
from stackha.runner import SubprocessRunner

PROCESSES = ProcTable()
# A daemon that ignores SIGTERM: only SIGKILL ends it.
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"


def uid_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_a_daemon_runs_as_the_given_user_with_its_pid_file(tmp_path):
    os.chmod(tmp_path, 0o755)
    pidfile = tmp_path / "run" / "sleeper.pid"
    pid = start_daemon(
        SubprocessRunner(), ["/bin/sleep", "300"], user="nobody", pidfile=str(pidfile)
    )
    try:
        assert read_pidfile(str(pidfile)) == pid
        assert running_pid(PROCESSES, str(pidfile), "sleep") == pid
        assert uid_of(pid) == pwd.getpwnam("nobody").pw_uid
        assert os.getsid(pid) == pid
    finally:
        stop_process(PROCESSES, pid, Deadline(SystemClock(), 10))
    assert not is_alive(PROCESSES, pid)


def test_a_daemon_that_ignores_term_is_killed_inside_the_stop_budget(tmp_path):
    pid = start_daemon(SubprocessRunner(), [sys.executable, "-c", STUBBORN])
    wait_until(lambda: PROCESSES.state(pid) == "S", Deadline(SystemClock(), 10), "daemon asleep")
    time.sleep(0.3)  # let it install its SIGTERM handler
    started = time.monotonic()
    stop_process(PROCESSES, pid, Deadline(SystemClock(), 4), reserve=1.5)
    elapsed = time.monotonic() - started
    assert not is_alive(PROCESSES, pid)
    assert 2.0 <= elapsed <= 4.0  # it waited out the graceful part, then killed before the end
