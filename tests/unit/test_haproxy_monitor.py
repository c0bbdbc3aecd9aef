"""ocf:stackha:haproxy's depth-10 monitor within the operation's budget: a fake process table
and clock, a real UNIX stats socket and a loopback health URL. (The agent against a real
HAProxy is tests/integration/test_haproxy_agent.py.)"""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeHttpServer, FakeProcess, FakeProcessTable
from stackha.agents import haproxy as HAPROXY
from stackha.ocf.agent import main

ROOT = Path(__file__).resolve().parents[2]
MASTER, WORKER = 700, 701
INFO = b"Name: HAProxy\nVersion: 2.6.12\nPid: 701\nStopping: 0\n\n"


class StatsSocket:
    """HAProxy's stats socket: answers 'show info' after ``delay`` (seconds of the fake
    clock), or never when ``hung``."""

    def __init__(self, path, clock, delay=0.0, hung=False):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.held = []
        self.clock, self.delay, self.hung = clock, delay, hung
        threading.Thread(target=self.answer, daemon=True).start()

    def answer(self):
        conn, _ = self.server.accept()
        conn.recv(100)
        if self.hung:
            self.held.append(conn)  # accepted, read, never answered
            return
        self.clock.sleep(self.delay)
        conn.sendall(INFO)
        conn.close()

    def close(self):
        for conn in self.held:
            conn.close()
        self.server.close()


@pytest.fixture
def site(tmp_path, fake_clock, monkeypatch):
    """A running HAProxy (master and worker in the fake process table) and its files."""
    table = FakeProcessTable(fake_clock)
    table.add(MASTER, FakeProcess("haproxy", children=[WORKER]))
    table.add(WORKER, FakeProcess("haproxy"))
    monkeypatch.setattr(HAPROXY, "PROCESSES", table)
    pidfile = tmp_path / "haproxy.pid"
    pidfile.write_text(f"{MASTER}\n")
    config = tmp_path / "haproxy.cfg"
    config.write_text("global\n    daemon\n")
    return tmp_path, {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": "haproxy:0",
        "OCF_RESKEY_config": str(config),
        "OCF_RESKEY_pidfile": str(pidfile),
        "OCF_RESKEY_stats_socket": str(tmp_path / "admin.sock"),
        "OCF_RESKEY_CRM_meta_interval": "30000",
        "OCF_RESKEY_CRM_meta_timeout": "20000",
        "OCF_CHECK_LEVEL": "10",
    }


def monitor(env, fake_clock):
    err = io.StringIO()
    code = main(
        HAPROXY.AGENT,
        ["haproxy", "monitor"],
        env,
        clock=fake_clock,
        stdout=io.StringIO(),
        stderr=err,
    )
    reason = err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else ""
    return code, reason.partition("ocf-exit-reason:")[2], err.getvalue()


def test_a_stats_socket_slower_than_check_timeout_is_logged_not_failed(site, fake_clock):
    """7 s of a 20 s monitor (18 s once 2 s are kept to report): a warning, and running."""
    tmp_path, env = site
    stats = StatsSocket(tmp_path / "admin.sock", fake_clock, delay=7)
    try:
        code, _, err = monitor(env, fake_clock)
    finally:
        stats.close()
    assert code == 0, err
    assert err == (
        f"WARNING: 'show info' on {stats.path} answered after 7.0 s, slower than 5 s "
        "(budget 18 s): slow, not failed\n"
    )


def test_a_hung_stats_socket_fails_inside_the_operation_timeout(site, fake_clock):
    """Accepted and never answered: a 3 s monitor gives up after its 1.5 s budget."""
    tmp_path, env = site
    stats = StatsSocket(tmp_path / "admin.sock", fake_clock, hung=True)
    started = time.monotonic()
    try:
        code, reason, err = monitor({**env, "OCF_RESKEY_CRM_meta_timeout": "3000"}, fake_clock)
    finally:
        stats.close()
    assert (code, reason) == (
        1,
        f"stats socket {stats.path} does not answer: no answer within 1.5 s",
    )
    assert time.monotonic() - started < 3


def test_the_health_url_gets_what_the_stats_socket_left(site, fake_clock):
    """The stats socket took 17 s of the 18 s budget: the health URL gets 1 s, not its own."""
    tmp_path, env = site
    stats = StatsSocket(tmp_path / "admin.sock", fake_clock, delay=17)
    health = FakeHttpServer()

    def late():
        time.sleep(1.5)
        return 200, {}, "ok"

    health.answers["GET", "/healthz"] = late
    try:
        code, reason, _ = monitor(
            {**env, "OCF_RESKEY_health_url": f"{health.url}/healthz"}, fake_clock
        )
    finally:
        stats.close()
        health.close()
    assert (code, reason) == (
        1,
        f"health URL {health.url}/healthz does not answer: no answer within 1.0 s",
    )


def test_stop_never_deletes_a_file_that_is_not_a_pid_file(site, fake_clock):
    """Issue 15: `pidfile` naming a file that holds text, not a pid: stop removed it (exit
    0) and left HAProxy running. It leaves the file alone, and finds HAProxy by the -f
    configuration on its command line."""
    import signal

    tmp_path, env = site
    table = HAPROXY.PROCESSES
    for pid in (MASTER, WORKER):
        table.processes[pid].arguments = ["haproxy", "-W", "-D", "-f", env["OCF_RESKEY_config"]]
        table.processes[pid].dies_on = {signal.SIGTERM: 0.5}
    notes = tmp_path / "notes.txt"
    notes.write_text("an operator's notes\n")
    err = io.StringIO()
    code = main(
        HAPROXY.AGENT,
        ["haproxy", "stop"],
        {**env, "OCF_RESKEY_pidfile": str(notes)},
        clock=fake_clock,
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert notes.read_text() == "an operator's notes\n"
    assert sorted(pid for pid, _, _ in table.signals) == [MASTER, WORKER]
    assert not table.pids()
