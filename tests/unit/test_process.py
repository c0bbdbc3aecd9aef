import signal

import pytest
from fakes import FakeProcess, FakeProcessTable
from stackha.clock import Deadline
from stackha.process import (
    ProcessError,
    ProcTable,
    find_instance,
    find_processes,
    is_alive,
    read_pidfile,
    remove_own_file,
    remove_stale_pidfile,
    remove_stale_socket,
    running_pid,
    start_daemon,
    stop_process,
    wait_until,
)


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
    with pytest.raises(ProcessError, match="still running after SIGKILL"):
        stop_process(table, 10, Deadline(fake_clock, 5))


def test_a_zombie_is_not_alive(fake_clock):
    """A zombie still passes kill -0; it is gone all the same."""
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc", state="Z"))
    assert not is_alive(table, 10)


def test_wait_until_gives_up_at_the_deadline_with_a_reason(fake_clock):
    with pytest.raises(ProcessError, match="service ready not reached within 30s"):
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


# -- files a stop may remove (issue 15: never a file that is not its own) ---------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"text, not a pid\n", b"12 34\n", b"\xd9\xa3\n", b"1" * 40 + b"\n", b"-5\n"],
)
def test_a_file_that_is_not_a_pid_file_is_never_removed(tmp_path, fake_clock, content):
    path = tmp_path / "pid"
    path.write_bytes(content)
    assert not remove_stale_pidfile(FakeProcessTable(fake_clock), str(path), "svc")
    assert path.read_bytes() == content


def test_a_stale_pid_file_is_removed_a_live_one_is_kept(tmp_path, fake_clock):
    table = FakeProcessTable(fake_clock)
    table.add(10, FakeProcess("svc"))
    table.add(11, FakeProcess("bash"))
    live, reused, dead = (tmp_path / name for name in ("live", "reused", "dead"))
    live.write_text("10\n")
    reused.write_text("11\n")  # the number now belongs to another program
    dead.write_text("12\n")
    assert not remove_stale_pidfile(table, str(live), "svc")
    assert remove_stale_pidfile(table, str(reused), "svc")
    assert remove_stale_pidfile(table, str(dead), "svc")
    assert live.exists() and not reused.exists() and not dead.exists()


def test_directories_links_fifos_and_impossible_paths_are_left_alone(tmp_path, fake_clock):
    import os

    table = FakeProcessTable(fake_clock)
    target = tmp_path / "target"
    target.write_text("12\n")
    link = tmp_path / "link"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # reading it would block: never opened
    for path in (str(tmp_path), str(link), str(fifo), "/tmp/" + "x" * 5000, "a\0b"):
        assert not remove_stale_pidfile(table, path, "svc")
        assert read_pidfile(path) is None  # a link is not followed either
    assert target.exists() and link.is_symlink() and fifo.exists()


def test_an_own_file_is_removed_only_with_its_header(tmp_path):
    own, other = tmp_path / "own", tmp_path / "other"
    own.write_text("# written by ocf:stackha:nova-api\n[DEFAULT]\n")
    other.write_text("[DEFAULT]\n# written by ocf:stackha:nova-api\n")
    assert remove_own_file(str(own), "# written by ocf:stackha:nova-api")
    assert not remove_own_file(str(other), "# written by ocf:stackha:nova-api")
    assert not own.exists() and other.exists()


def test_only_a_socket_is_removed_as_a_stale_socket(tmp_path):
    import socket

    sock, regular = tmp_path / "s", tmp_path / "r"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock))
    regular.write_text("data\n")
    assert remove_stale_socket(str(sock)) and not sock.exists()
    assert not remove_stale_socket(str(regular)) and regular.exists()
    assert not remove_stale_socket(str(tmp_path))


# -- finding an instance without its pid file -------------------------------------------------


def test_an_instance_is_found_by_its_own_arguments_not_by_its_program_alone(tmp_path, fake_clock):
    table = FakeProcessTable(fake_clock)
    table.add(20, FakeProcess("mariadbd", arguments=["mariadbd", "--datadir=/var/lib/mysql"]))
    table.add(21, FakeProcess("mariadbd", arguments=["mariadbd", "--datadir=/srv/other"]))
    table.add(22, FakeProcess("bash", arguments=["bash", "--datadir=/var/lib/mysql"]))
    table.add(23, FakeProcess("mariadbd", state="Z", arguments=["--datadir=/var/lib/mysql"]))
    container = FakeProcess("mariadbd", arguments=["--datadir=/var/lib/mysql"], local=False)
    table.add(24, container)  # another mount namespace: its /var/lib/mysql is not ours
    assert find_processes(table, "mariadbd", ["--datadir=/var/lib/mysql"]) == [20]
    assert find_processes(table, "mariadbd", []) == []
    assert find_processes(table, "mariadbd", [""]) == []
    pidfile = tmp_path / "pid"
    pidfile.write_text("21\n")
    assert find_instance(table, str(pidfile), "mariadbd", ["--datadir=/var/lib/mysql"]) == [20, 21]
    assert find_instance(table, str(tmp_path), "mariadbd", ["--datadir=/var/lib/mysql"]) == [20]


def test_the_real_table_lists_this_process_with_its_arguments():
    import os

    table = ProcTable()
    assert os.getpid() in table.pids()
    assert "pytest" in " ".join(table.arguments(os.getpid()))
    assert table.arguments(2**22 + 7) == []
    assert table.local(os.getpid()) and not table.local(2**22 + 7)
