"""A lab node's daemons read from /proc by PID namespace, its POST, and its BMC's test knob."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from fakes import FakeClock
from stackha.clock import Deadline
from stackha.lab import bmc, post
from stackha.lab.namespaces import LabError
from stackha.lab.node import Node, daemons_by_pid_namespace
from stackha.process import ProcTable


def add_process(proc, pid, comm, namespace, state="S"):
    directory = proc / str(pid)
    (directory / "ns").mkdir(parents=True)
    (directory / "comm").write_text(f"{comm}\n")
    (directory / "stat").write_text(f"{pid} ({comm}) {state} 1 1 1\n")
    os.symlink(f"pid:[{namespace}]", directory / "ns" / "pid")


@pytest.fixture
def proc(tmp_path):
    """Two nodes (namespaces 101 and 102) and the host (1): node1 runs both daemons, node2's
    pacemakerd has exited (a zombie for the moment), the host runs a corosync of its own."""
    root = tmp_path / "proc"
    add_process(root, 500, "tini", 101)
    add_process(root, 501, "corosync", 101)
    add_process(root, 502, "pacemakerd", 101)
    add_process(root, 503, "pacemaker-based", 101)
    add_process(root, 600, "tini", 102)
    add_process(root, 601, "corosync", 102)
    add_process(root, 602, "pacemakerd", 102, state="Z")
    add_process(root, 700, "corosync", 1)
    (root / "self").mkdir()
    return root


def node(proc, init_pid):
    return Node(None, ProcTable(str(proc)), "n", 1, "a", 24, proc, init_pid=init_pid)


def test_daemons_are_found_by_the_pid_namespace_of_each_node(proc):
    found = daemons_by_pid_namespace(str(proc))
    assert found == {
        "pid:[101]": {"corosync", "pacemakerd"},
        "pid:[102]": {"corosync"},
        "pid:[1]": {"corosync"},
    }
    assert node(proc, 500).daemons(found, str(proc)) == {
        "corosync": "running",
        "pacemakerd": "running",
    }
    # a Pacemaker that shut itself down (it learned it was fenced): pacemakerd stopped
    assert node(proc, 600).daemons(found, str(proc)) == {
        "corosync": "running",
        "pacemakerd": "stopped",
    }
    # a node that is off: nothing runs, whatever the host runs
    assert node(proc, None).daemons(found, str(proc)) == {
        "corosync": "stopped",
        "pacemakerd": "stopped",
    }


def test_post_waits_then_becomes_the_program(monkeypatch):
    """The POST sleeps its seconds, then execs the program in its own place."""
    done = []
    monkeypatch.setattr(post.time, "sleep", lambda seconds: done.append(("sleep", seconds)))
    monkeypatch.setattr(post.os, "execv", lambda path, argv: done.append(("exec", path, argv)))
    post.main(["2.5", "--", "/usr/sbin/corosync", "-f"])
    assert done == [("sleep", 2.5), ("exec", "/usr/sbin/corosync", ["/usr/sbin/corosync", "-f"])]
    assert post.main(["soon", "--", "/bin/true"]) == 2


def test_the_bmc_busy_knob_refuses_as_many_power_ons_as_it_says(tmp_path):
    directory = str(tmp_path)
    assert not bmc.take_busy_power_on(directory, "node1")
    bmc.set_busy_power_ons(directory, "node1", 2)
    assert [bmc.take_busy_power_on(directory, "node1") for _ in range(3)] == [True, True, False]
    assert not bmc.busy_knob(directory, "node1").exists()
    assert not bmc.take_busy_power_on(directory, "node2")


class DyingOnSignal(ProcTable):
    """The fake /proc's processes end on the first signal they get; the signals recorded."""

    def __init__(self, proc):
        super().__init__(str(proc))
        self.proc, self.sent = proc, []

    def signal(self, pid, signum):
        self.sent.append((pid, signum))
        shutil.rmtree(self.proc / str(pid))


def test_a_clean_cluster_stop_ends_pacemakerd_then_corosync_of_that_node_only(proc):
    table = DyingOnSignal(proc)
    one = Node(None, table, "n", 1, "a", 24, proc, init_pid=500)
    one.stop_cluster(Deadline(FakeClock(), 5), str(proc))
    assert table.sent == [(502, signal.SIGTERM), (501, signal.SIGTERM)]
    # the other node's and the host's corosync are not touched
    assert (proc / "601").exists() and (proc / "700").exists()


def test_a_cluster_stop_that_does_not_end_names_the_daemon(proc):
    clock = FakeClock()

    class Deaf(DyingOnSignal):
        def signal(self, pid, signum):
            self.sent.append((pid, signum))

    table = Deaf(proc)
    one = Node(None, table, "n", 1, "a", 24, proc, init_pid=500)
    with pytest.raises(LabError, match="node n: pacemakerd did not stop"):
        one.stop_cluster(Deadline(clock, 5), str(proc))
    assert table.sent == [(502, signal.SIGTERM)]
