"""ocf:stackha:memcached run as Pacemaker runs it, with fakes at the boundary: a fake runner
that records what is spawned, a fake process table and clock, and a loopback server speaking
memcached's protocol (tests/fakes.FakeMemcached) that starts listening when memcached is
spawned, as the real one does. No memcached, no root. (The real memcached:
tests/integration/test_memcached_one_node.py.)"""

from __future__ import annotations

import io
import os
import pwd
import signal
import socket
from pathlib import Path

import pytest
from agent_runs import free_port
from agent_runs import reason_in as reason
from fakes import FakeMemcached, FakeProcess, FakeProcessTable
from lxml import etree
from stackha.agents import memcached as MEMCACHED
from stackha.ocf.agent import main

ROOT = Path(__file__).resolve().parents[2]
USER = pwd.getpwuid(os.getuid()).pw_name  # a user that exists, root or not
PID = 4321


class Node:
    """One node's memcached under test: its files under ``root``, the fakes, and the loopback
    server standing in for memcached on its port."""

    def __init__(self, root, runner, clock, processes):
        self.runner, self.clock, self.processes = runner, clock, processes
        self.binary = root / "bin" / "memcached"
        self.binary.parent.mkdir(parents=True)
        self.binary.write_text("#!/bin/sh\nexit 99\n")  # never run: the runner is fake
        self.binary.chmod(0o755)
        self.pidfile = root / "run" / "memcached" / "memcached-ocf.pid"  # no directory yet
        self.log_file = root / "memcached.log"
        self.ha_log = root / "pacemaker.log"
        self.port = free_port()
        self.servers = []

    def env(self, **extra):
        return {
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": "memcached:0",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_binary": str(self.binary),
            "OCF_RESKEY_address": "127.0.0.1",
            "OCF_RESKEY_port": str(self.port),
            "OCF_RESKEY_user": USER,
            "OCF_RESKEY_pidfile": str(self.pidfile),
            "OCF_RESKEY_log_file": str(self.log_file),
            "HA_LOGFILE": str(self.ha_log),
            **extra,
        }

    def monitor_env(self, level, **extra):
        return self.env(OCF_RESKEY_CRM_meta_interval="10000", OCF_CHECK_LEVEL=str(level), **extra)

    def run(self, action, env):
        out, err = io.StringIO(), io.StringIO()
        code = main(
            MEMCACHED.AGENT,
            ["memcached", action],
            env,
            runner=self.runner,
            clock=self.clock,
            stdout=out,
            stderr=err,
        )
        return code, err.getvalue()

    def log(self):
        return self.ha_log.read_text() if self.ha_log.exists() else ""

    def listen(self):
        server = FakeMemcached(port=self.port)
        self.servers.append(server)
        return server

    def running(self, pid=PID, dies_on=None, arguments=()):
        """A memcached that runs, with its pid file."""
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{pid}\n")
        self.processes.add(
            pid,
            FakeProcess(
                "memcached",
                dies_on={signal.SIGTERM: 0.2} if dies_on is None else dies_on,
                arguments=list(arguments),
            ),
        )
        return pid

    def boots(self, dies_saying=None):
        """What is spawned runs and listens (or exits at once, having written its reason)."""
        spawn = self.runner.spawn

        def spawned(spec):
            pid = spawn(spec)
            if dies_saying is not None:
                self.log_file.write_text(dies_saying + "\n")
                self.processes.add(pid, FakeProcess("memcached", state="Z"))
            else:
                self.processes.add(pid, FakeProcess("memcached"))
                self.listen()
            return pid

        self.runner.spawn = spawned

    def close(self):
        for server in self.servers:
            server.close()


@pytest.fixture
def processes(fake_clock, monkeypatch):
    table = FakeProcessTable(fake_clock)
    monkeypatch.setattr(MEMCACHED, "PROCESSES", table)
    return table


@pytest.fixture
def node(tmp_path, fake_runner, fake_clock, processes):
    made = Node(tmp_path, fake_runner, fake_clock, processes)
    yield made
    made.close()


# -- meta-data ---------------------------------------------------------------------------------


def test_meta_data_declares_debians_defaults_and_three_monitor_depths():
    out = io.StringIO()
    env = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
    assert main(MEMCACHED.AGENT, ["memcached", "meta-data"], env, stdout=out) == 0
    root = etree.fromstring(out.getvalue().encode())
    found = {p.get("name"): p.find("content").get("default") for p in root.findall("parameters/*")}
    assert found == {
        "binary": "/usr/bin/memcached",
        "address": "",
        "port": "11211",
        "user": "memcache",
        "memory": "64",
        "max_connections": "1024",
        "pidfile": "/run/memcached/memcached-ocf.pid",
        "log_file": "/var/log/memcached.log",
        "check_timeout": "5",
    }
    monitors = [
        (a.get("depth"), a.get("interval"), a.get("timeout"))
        for a in root.findall("actions/action[@name='monitor']")
    ]
    assert monitors == [("0", "10s", "20s"), ("10", "30s", "20s"), ("20", "60s", "20s")]
    assert "systemd:memcached" in root.findtext("longdesc")  # why an agent of our own
    relaxng = etree.RelaxNG(etree.parse(str(ROOT / "tests/schemas/ocf-ra-1.1.rng")))
    assert relaxng.validate(root), relaxng.error_log


# -- what start and validate-all refuse ----------------------------------------------------------


def test_a_configuration_that_works_validates(node):
    code, err = node.run("validate-all", node.env())
    assert code == 0, err


def test_a_missing_binary_is_not_installed(node):
    node.binary.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"{node.binary} is not installed or not executable")
    assert node.runner.spawned == []


def test_an_unknown_user_is_not_installed(node):
    code, err = node.run("start", node.env(OCF_RESKEY_user="stackha-no-such-user"))
    assert (code, reason(err)) == (5, "user stackha-no-such-user does not exist on this node")
    assert node.runner.spawned == []


def test_a_port_another_process_holds_is_not_started_on(node):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.port))
        taken.listen(1)
        code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        5,
        f"memcached cannot start: port {node.port} on 127.0.0.1 is already in use by another "
        "process",
    )
    assert node.runner.spawned == []


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("address", "controller1", "parameter address: 'controller1' is not an IP address"),
        ("memory", "1", "parameter memory: 1 is below the minimum 2"),
        ("max_connections", "10", "parameter max_connections: 10 is below the minimum 64"),
        ("port", "0", "parameter port: 0 is below the minimum 1"),
    ],
)
def test_a_bad_parameter_is_not_configured_naming_it(node, variable, value, why):
    for action in ("validate-all", "start"):
        code, err = node.run(action, node.env(**{f"OCF_RESKEY_{variable}": value}))
        assert (code, reason(err)) == (6, why)
    assert node.runner.spawned == []


def test_no_address_and_a_host_name_of_loopback_only_is_this_nodes_problem(node, monkeypatch):
    """Debian's installer maps the host name to 127.0.1.1: no other node could reach it."""
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "gethostname", lambda: "node1")
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.1.1" if host == "node1" else host, *a, **k),
    )
    code, err = node.run("start", node.env(OCF_RESKEY_address=""))
    assert (code, reason(err)) == (
        5,
        "address not set and host name node1 resolves to loopback only (127.0.1.1): "
        "set address to this node's address",
    )
    assert node.runner.spawned == []


def test_a_log_file_that_is_a_directory_is_not_installed(node):
    node.log_file.mkdir()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"log_file {node.log_file} is not a regular file")
    assert node.runner.spawned == []


# -- start -------------------------------------------------------------------------------------


def test_start_runs_memcached_in_the_foreground_as_root_and_waits_until_it_answers(node):
    """As root: memcached raises its file limit for -c, then switches to -u itself."""
    node.boots()
    code, err = node.run("start", node.env(OCF_RESKEY_memory="128"))
    assert code == 0, err
    (spawned,) = node.runner.spawned
    assert spawned.argv == (
        str(node.binary),
        "-u",
        USER,
        "-l",
        "127.0.0.1",
        "-p",
        str(node.port),
        "-U",
        "0",
        "-m",
        "128",
        "-c",
        "1024",
    )
    assert spawned.user is None
    assert spawned.output_path == str(node.log_file)
    pid = node.runner.next_pid
    assert node.pidfile.read_text() == f"{pid}\n"
    assert node.servers[0].commands == ["version"]
    assert f"memcached started (pid {pid}) and answers on 127.0.0.1:{node.port}" in node.log()


def test_start_waits_for_memcached_to_listen(node):
    """Spawned, but listening only after a few polls: start polls, then returns."""
    polls = []
    node.runner.spawn = lambda spec: (node.processes.add(5000, FakeProcess("memcached")), 5000)[1]
    sleep = node.clock.sleep

    def sleeping(seconds):
        polls.append(seconds)
        if len(polls) == 3:
            node.listen()
        sleep(seconds)

    node.clock.sleep = sleeping
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert polls == [0.1, 0.1, 0.1]


def test_a_memcached_that_exits_during_start_fails_it_with_its_own_words(node):
    node.boots(dies_saying="failed to set rlimit for open files. Try starting as root or ...")
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        1,
        "memcached exited during start: failed to set rlimit for open files. Try starting as "
        f"root or ... (its output is in {node.log_file})",
    )


def test_a_memcached_that_never_answers_fails_the_start_at_its_timeout(node):
    node.runner.spawn = lambda spec: (node.processes.add(5000, FakeProcess("memcached")), 5000)[1]
    code, err = node.run("start", node.env(OCF_RESKEY_CRM_meta_timeout="5000"))
    assert code == 1
    assert reason(err) == (
        f"memcached answering not reached within 4s: memcached at 127.0.0.1:{node.port} does "
        "not answer: Connection refused"
    )


def test_start_of_a_running_memcached_spawns_nothing(node):
    node.running()
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert node.runner.spawned == []
    assert "memcached is already running" in node.log()


def test_a_stale_pid_file_is_removed_before_start(node):
    """The pid of another program now: not memcached, so the file is stale."""
    node.pidfile.parent.mkdir(parents=True)
    node.pidfile.write_text("999\n")
    node.processes.add(999, FakeProcess("bash"))
    node.boots()
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert node.pidfile.read_text() == f"{node.runner.next_pid}\n"


# -- monitor -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0, 10, 20])
def test_monitor_of_a_stopped_memcached_is_not_running(node, level):
    code, err = node.run("monitor", node.monitor_env(level))
    assert code == 7, err


def test_a_probe_of_a_stopped_memcached_is_not_running(node):
    code, err = node.run("monitor", node.env(OCF_RESKEY_CRM_meta_interval="0"))
    assert code == 7, err


def test_depth_0_checks_the_process_only(node):
    node.running()
    code, err = node.run("monitor", node.monitor_env(0))
    assert code == 0, err


def test_depth_10_asks_its_version(node):
    node.running()
    server = node.listen()
    code, err = node.run("monitor", node.monitor_env(10))
    assert code == 0, err
    assert server.commands == ["version"]


def test_depth_10_fails_when_memcached_does_not_answer(node):
    node.running()
    code, err = node.run("monitor", node.monitor_env(10))
    assert (code, reason(err)) == (
        1,
        f"memcached at 127.0.0.1:{node.port} does not answer: Connection refused",
    )


def test_depth_10_fails_on_an_answer_that_is_not_memcacheds(node):
    node.running()
    node.listen().answers["version"] = b"HTTP/1.1 400 Bad Request\r\n"
    code, err = node.run("monitor", node.monitor_env(10))
    assert (code, reason(err)) == (
        1,
        f"memcached at 127.0.0.1:{node.port} answered 'version' with 'HTTP/1.1 400 Bad "
        "Request', not VERSION",
    )


def test_depth_20_stores_an_item_of_its_own_and_reads_it_back(node):
    node.running()
    server = node.listen()
    code, err = node.run("monitor", node.monitor_env(20))
    assert code == 0, err
    version, stored, value, read = server.commands
    assert (version, stored, read) == (
        "version",
        "set stackha:monitor 0 30 16",
        "get stackha:monitor",
    )
    assert len(value) == 16 and int(value, 16) >= 0
    # a new value each time: an item an earlier check left cannot pass for this one
    node.run("monitor", node.monitor_env(20))
    assert server.commands[5] != value


def test_depth_20_fails_when_memcached_cannot_store(node):
    node.running()
    node.listen().answers["set"] = b"SERVER_ERROR out of memory storing object\r\n"
    code, err = node.run("monitor", node.monitor_env(20))
    assert (code, reason(err)) == (
        1,
        f"memcached at 127.0.0.1:{node.port} answered 'set' with "
        "'SERVER_ERROR out of memory storing object', not STORED",
    )


def test_a_hung_memcached_fails_the_monitor_inside_its_timeout(node):
    """Accepted, never answered: a 3 s monitor gives up after its 1.5 s budget."""
    node.running()
    node.listen().answers["version"] = None
    code, err = node.run("monitor", node.monitor_env(10, OCF_RESKEY_CRM_meta_timeout="3000"))
    assert (code, reason(err)) == (
        1,
        f"memcached at 127.0.0.1:{node.port} does not answer: no answer within 1.5 s",
    )


def test_a_memcached_its_pid_file_does_not_name_fails_the_probe(node):
    """Found by its own -l and -p on its command line: never 7 while it runs."""
    node.running(pid=777, arguments=["memcached", "-l", "127.0.0.1", "-p", str(node.port)])
    node.pidfile.unlink()
    code, err = node.run("monitor", node.env(OCF_RESKEY_CRM_meta_interval="0"))
    assert (code, reason(err)) == (1, "runs here (pid 777) though its pid file does not name it")


def test_another_memcached_on_the_same_port_elsewhere_is_not_ours(node):
    """The distribution's own memcached (127.0.0.1:11211) beside ours on another address."""
    node.processes.add(
        888, FakeProcess("memcached", arguments=["memcached", "-l", "127.0.0.2", "-p", "11211"])
    )
    code, err = node.run(
        "monitor", node.env(OCF_RESKEY_CRM_meta_interval="0", OCF_RESKEY_port="11211")
    )
    assert code == 7, err


# -- stop --------------------------------------------------------------------------------------


def test_stop_terms_memcached_and_removes_its_pid_file(node):
    pid = node.running()
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert [(p, s) for p, s, _ in node.processes.signals] == [(pid, signal.SIGTERM)]
    assert not node.pidfile.exists()


def test_stop_kills_a_memcached_that_ignores_sigterm_within_the_timeout(node):
    pid = node.running(dies_on={})
    started = node.clock.now
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert [(p, s) for p, s, _ in node.processes.signals] == [
        (pid, signal.SIGTERM),
        (pid, signal.SIGKILL),
    ]
    # TERM, then KILL with the kill reserve (2 s) and the 0.5 s to report left of 20 s
    assert node.processes.signals[1][2] - started == pytest.approx(17.5, abs=0.2)
    assert not node.pidfile.exists()


def test_stop_of_a_stopped_memcached_succeeds(node):
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert node.processes.signals == []


def test_stop_finds_a_memcached_its_pid_file_does_not_name(node):
    node.running(pid=777, arguments=["memcached", "-l", "127.0.0.1", "-p", str(node.port)])
    node.pidfile.write_text("an operator's notes\n")
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert [(p, s) for p, s, _ in node.processes.signals] == [(777, signal.SIGTERM)]
    assert node.pidfile.read_text() == "an operator's notes\n"  # not a pid file: left alone
    assert "stopped a memcached its pid file did not name" in node.log()


def test_reload_agent_changes_nothing_of_a_running_memcached(node):
    node.running()
    code, err = node.run("reload-agent", node.env(OCF_RESKEY_check_timeout="9"))
    assert code == 0, err
    assert node.processes.signals == [] and node.runner.spawned == []
    node.pidfile.unlink()
    code, err = node.run("reload-agent", node.env())
    assert (code, reason(err)) == (7, "memcached is not running")
