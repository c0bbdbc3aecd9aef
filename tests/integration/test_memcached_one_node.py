"""ocf:stackha:memcached against the distribution's memcached on loopback, run as
pacemaker-execd runs it (the installed package's agent, as root)."""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import time

import pytest
from agent_runs import exit_reason, free_port, run_agent
from stackha.process import ProcTable, is_alive, read_pidfile

PROCESSES = ProcTable()


class Site:
    """One memcached resource: its files in a scratch directory, on a free loopback port."""

    def __init__(self, directory, agent, agent_env):
        self.agent = agent
        self.port = free_port()
        self.pidfile = directory / "run" / "memcached-ocf.pid"  # its directory does not exist
        self.log_file = directory / "memcached.log"
        self.env = {
            **agent_env,
            "OCF_RESOURCE_INSTANCE": "memcached-it",
            "OCF_RESKEY_address": "127.0.0.1",
            "OCF_RESKEY_port": str(self.port),
            "OCF_RESKEY_pidfile": str(self.pidfile),
            "OCF_RESKEY_log_file": str(self.log_file),
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": "10000",
        }

    def run(self, action, **extra):
        return run_agent(self.agent, action, {**self.env, **extra})

    def monitor(self, level):
        return self.run("monitor", OCF_CHECK_LEVEL=str(level))

    def probe(self):
        return self.run("monitor", OCF_RESKEY_CRM_meta_interval="0")

    def pid(self):
        return read_pidfile(str(self.pidfile))

    def ask(self, request, end=b"\r\n"):
        """What memcached answers to ``request``, read up to ``end``."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(request)
            answer = b""
            while not answer.endswith(end):
                chunk = conn.recv(4096)
                assert chunk, f"closed after {answer!r}"
                answer += chunk
        return answer


@pytest.fixture
def site(installed, agent_env, tmp_path):
    site = Site(tmp_path, installed / "memcached", agent_env)
    yield site
    try:
        assert site.run("stop").returncode == 0
    finally:
        # what the agent started and could not stop (the agent itself gone): by its pid file
        pid = site.pid()
        if pid is not None and PROCESSES.name(pid) == "memcached":
            os.kill(pid, signal.SIGKILL)


def test_start_monitor_at_every_depth_and_stop(site):
    """Start returns once memcached answers (no sleep before the first request); it runs as
    the memcache user, in the foreground under the agent's pid file; stop ends it."""
    assert site.probe().returncode == 7
    result = site.run("start")
    assert result.returncode == 0, result.stderr
    assert site.ask(b"version\r\n").startswith(b"VERSION 1.6")
    pid = site.pid()
    with open(f"/proc/{pid}/status") as status:
        uid = next(line.split()[1] for line in status if line.startswith("Uid:"))
    assert pwd.getpwuid(int(uid)).pw_name == "memcache"
    arguments = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    assert b"-d" not in arguments and b"-P" not in arguments
    for level in (0, 10, 20):
        result = site.monitor(level)
        assert result.returncode == 0, (level, result.stderr)
    assert b"STAT curr_items 1" in site.ask(b"stats\r\n", b"END\r\n")  # depth 20's own item
    result = site.run("stop")
    assert result.returncode == 0, result.stderr
    assert not is_alive(PROCESSES, pid)
    assert not site.pidfile.exists()
    assert site.run("stop").returncode == 0
    assert site.probe().returncode == 7


def test_a_killed_memcached_is_not_running_and_starts_again(site):
    assert site.run("start").returncode == 0
    pid = site.pid()
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not is_alive(PROCESSES, pid):
            break
        time.sleep(0.05)
    result = site.monitor(10)
    assert result.returncode == 7, result.stderr
    result = site.run("start")  # the stale pid file is no obstacle
    assert result.returncode == 0, result.stderr
    assert site.pid() != pid
    assert site.monitor(10).returncode == 0


def test_a_port_another_process_holds_is_not_installed_naming_the_port(site):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", site.port))
        taken.listen(1)
        result = site.run("start")
    assert result.returncode == 5
    assert exit_reason(result) == (
        f"memcached cannot start: port {site.port} on 127.0.0.1 is already in use by another "
        "process"
    )
    assert site.pid() is None


def test_a_missing_binary_or_user_is_not_installed(site, tmp_path):
    missing = tmp_path / "no-memcached"
    result = site.run("start", OCF_RESKEY_binary=str(missing))
    assert (result.returncode, exit_reason(result)) == (
        5,
        f"{missing} is not installed or not executable",
    )
    result = site.run("start", OCF_RESKEY_user="stackha-no-such-user")
    assert (result.returncode, exit_reason(result)) == (
        5,
        "user stackha-no-such-user does not exist on this node",
    )
    assert site.pid() is None


def test_another_memcached_on_the_same_port_is_left_alone(site):
    """The distribution's own memcached, on another address and the same port: a probe and a
    stop of this resource neither take it for theirs nor stop it, and this one starts beside
    it."""
    other = subprocess.Popen(
        ["/usr/bin/memcached", "-u", "memcache", "-l", "127.0.0.2", "-p", str(site.port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if PROCESSES.name(other.pid) == "memcached" and _listens("127.0.0.2", site.port):
                break
            time.sleep(0.05)
        assert site.probe().returncode == 7
        assert site.run("stop").returncode == 0
        assert site.run("start").returncode == 0
        assert site.run("stop").returncode == 0
        assert other.poll() is None, "the other memcached was stopped"
    finally:
        other.kill()
        other.wait()


def _listens(host, port):
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
