import signal

import pytest
from fakes import FakeProcess, FakeProcessTable
from stackha.clock import Deadline
from stackha.ocf.daemon import (
    ProcTable,
    is_alive,
    read_pidfile,
    running_pid,
    start_daemon,
    stop_process,
    wait_until,
)
from stackha.ocf.status import GenericError


def test_a_process_that_obeys_term_gets_no_kill(fake_clock):
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc", dies_on={signal.SIGTERM: 3.0}))
    stop_process(table, 10, Deadline(fake_clock, 20))
    assert [s for _, s, _ in table.signals] == [signal.SIGTERM]
    assert not is_alive(table, 10)


def test_a_stuck_process_is_killed_before_the_stop_budget_runs_out(fake_clock):
    """TERM first; KILL with the reserve still left, so stop ends inside its timeout."""
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc"))
    start = fake_clock.now
    stop_process(table, 10, Deadline(fake_clock, 20), reserve=2.0)
    (_, first, _), (_, second, at) = table.signals
    assert (first, second) == (signal.SIGTERM, signal.SIGKILL)
    assert 17.5 <= at - start <= 18.0
    assert fake_clock.now - start <= 20


def test_a_process_that_survives_kill_is_an_error(fake_clock):
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc", dies_on={signal.SIGKILL: 999}))
    with pytest.raises(GenericError, match="still running after SIGKILL"):
        stop_process(table, 10, Deadline(fake_clock, 5))


def test_a_zombie_is_not_alive(fake_clock):
    """A zombie still passes kill -0; it is gone all the same."""
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc", state="Z"))
    assert not is_alive(table, 10)


def test_wait_until_gives_up_at_the_deadline_with_a_reason(fake_clock):
    with pytest.raises(GenericError, match="service ready not reached within 30s"):
        wait_until(lambda: False, Deadline(fake_clock, 30), "service ready")
    assert fake_clock.now == pytest.approx(1030)


def test_wait_until_returns_as_soon_as_ready(fake_clock):
    answers = iter([False, False, True])
    wait_until(lambda: next(answers), Deadline(fake_clock, 30), "ready", interval=1)
    assert fake_clock.sleeps == [1, 1]


def test_pidfile_reading(tmp_path):
    path = tmp_path / "x.pid"
    assert read_pidfile(str(path)) is None
    path.write_text("123\n")
    assert read_pidfile(str(path)) == 123
    path.write_text("garbage")
    assert read_pidfile(str(path)) is None


def test_a_reused_pid_is_not_our_process(tmp_path, fake_clock):
    """A stale pid file whose number now belongs to another program is not "running"."""
    table = FakeProcessTable(fake_clock)
    table.add(55, FakeProcess("bash"))
    path = tmp_path / "x.pid"
    path.write_text("55\n")
    assert running_pid(table, str(path), "haproxy") is None
    assert running_pid(table, str(path)) == 55


def test_the_real_process_table_sees_this_process():
    import os
    import subprocess

    table = ProcTable()
    assert is_alive(table, os.getpid())
    # ps names it as the kernel does: "python3" under make, "pytest" from the venv's script
    ps = subprocess.run(
        ["ps", "-o", "comm=", "-p", str(os.getpid())], capture_output=True, text=True
    )
    assert table.name(os.getpid()) == ps.stdout.strip()


def test_start_daemon_writes_the_pidfile(tmp_path, fake_runner):
    pidfile = tmp_path / "run" / "svc.pid"
    pid = start_daemon(fake_runner, ["/usr/bin/svc", "-f"], user="nobody", pidfile=str(pidfile))
    assert pidfile.read_text() == f"{pid}\n"
    assert fake_runner.spawned[0].argv == ("/usr/bin/svc", "-f")
    assert fake_runner.spawned[0].user == "nobody"
