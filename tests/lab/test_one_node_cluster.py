"""ocf:stackha:haproxy inside a real Pacemaker + Corosync cluster (one namespace node)."""

from __future__ import annotations

import signal
import time

import pytest
from lab_helpers import lab_up
from stackha.clock import Deadline, SystemClock
from stackha.lab.lab import Lab
from stackha.pacemaker import attrd_updater, crm_attribute
from stackha.process import ProcTable, wait_until

HAPROXY_CFG = """global
    stats socket /run/haproxy/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:8080
    http-request return status 200 content-type text/plain string ok
"""


class OneNode:
    """The single node of a one-node lab, as the tests below use it."""

    def __init__(self, lab):
        self.lab = lab
        self.node = lab.node("node1")
        self.runner = self.node.runner
        self.init_pid = self.node.init_pid
        self.name = self.node.name

    def status(self):
        return self.node.status()


@pytest.fixture(scope="module")
def node(packaged, tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("cluster") / "lab"))
    try:
        lab_up(lab, packaged, nodes=1, subnet="192.168.215.0/24", timeout=120)
        yield OneNode(lab)
    finally:
        lab.down()


def inside(node, *argv, timeout=60):
    return node.runner.run(list(argv), timeout=timeout)


def haproxy_instances(node):
    status = node.status()
    return [] if status is None else status.instances("haproxy")


def test_pcs_resource_create_starts_the_haproxy_clone(node):
    """What an operator types: pcs resource create … ocf:stackha:haproxy … clone."""
    # in the lab's directory, which every node sees at the host's path (a node of a release
    # has a /tmp of its own)
    config = node.lab.directory / "test-haproxy.cfg"
    config.write_text(HAPROXY_CFG)
    assert inside(node, "pcs", "property", "set", "stonith-enabled=false").ok
    result = inside(
        node,
        "pcs",
        "resource",
        "create",
        "haproxy",
        "ocf:stackha:haproxy",
        f"config={config}",
        "op",
        "monitor",
        "interval=5s",
        "OCF_CHECK_LEVEL=10",
        "clone",
        "interleave=true",
        "--wait=60",
    )
    assert result.ok, result.stdout + result.stderr
    (instance,) = haproxy_instances(node)
    assert instance.active and not instance.failed and instance.nodes == ("node1",)
    assert instance.agent == "ocf:stackha:haproxy"
    answer = inside(node, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:8080/")
    assert answer.stdout == "ok"


def test_pacemaker_restarts_a_killed_haproxy(node):
    """The monitor notices the dead master and Pacemaker recovers it through the agent."""
    before = inside(node, "cat", "/run/haproxy.pid").stdout.strip()
    host_pid = host_pid_of(node, int(before))
    ProcTable().signal(host_pid, signal.SIGKILL)

    def restarted() -> bool:
        now = inside(node, "cat", "/run/haproxy.pid", timeout=10).stdout.strip()
        instances = haproxy_instances(node)
        return now not in ("", before) and any(i.active and not i.failed for i in instances)

    wait_until(restarted, Deadline(SystemClock(), 60), "haproxy restarted by Pacemaker", 0.5)
    failures = inside(node, "crm_mon", "-1", "--failcounts").stdout
    assert "haproxy" in failures and "fail-count=1" in failures.replace(" ", "")
    assert inside(node, "curl", "-sS", "--max-time", "5", "http://127.0.0.1:8080/").stdout == "ok"


def host_pid_of(node, pid_in_node):
    """The host's pid of a process known inside the node by ``pid_in_node``."""
    for entry in ProcTable().children(node.init_pid) + all_descendants(node.init_pid):
        try:
            with open(f"/proc/{entry}/status") as handle:
                for line in handle:
                    if line.startswith("NSpid:"):
                        numbers = line.split()[1:]
                        if len(numbers) > 1 and int(numbers[-1]) == pid_in_node:
                            return entry
        except OSError:
            continue
    raise AssertionError(f"no process {pid_in_node} in {node.name}")


def all_descendants(pid):
    table = ProcTable()
    found, todo = [], [pid]
    while todo:
        for child in table.children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def test_node_attribute_helpers_against_the_live_cluster(node):
    """crm_attribute and attrd_updater wrappers, as agents will use them, on a real cluster."""
    runner = node.runner
    assert crm_attribute.get_node(runner, "stackha-test") is None
    crm_attribute.set_node(runner, "stackha-test", "42")
    assert crm_attribute.get_node(runner, "stackha-test") == "42"
    assert "stackha-test" in inside(node, "crm_mon", "-1", "-A").stdout
    crm_attribute.delete_node(runner, "stackha-test")
    assert crm_attribute.get_node(runner, "stackha-test") is None
    crm_attribute.set_promotion_score(runner, "haproxy", 7)
    assert crm_attribute.get_node(runner, "master-haproxy") == "7"
    crm_attribute.delete_promotion_score(runner, "haproxy")
    assert attrd_updater.query(runner, "stackha-private") is None
    attrd_updater.update(runner, "stackha-private", "a b", private=True)
    deadline = time.monotonic() + 10
    while attrd_updater.query(runner, "stackha-private") != "a b" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert attrd_updater.query(runner, "stackha-private") == "a b"
    assert "stackha-private" not in inside(node, "cibadmin", "--query").stdout


def test_stopping_the_clone_stops_haproxy(node):
    result = inside(node, "pcs", "resource", "disable", "haproxy-clone", "--wait=60")
    assert result.ok, result.stderr
    assert not inside(node, "test", "-e", "/run/haproxy.pid").ok
    assert inside(node, "pgrep", "-x", "haproxy").returncode == 1
