"""The namespace lab itself: nodes, BMCs, crash, partition, fencing, tear-down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lab_helpers import cluster_view, inside, lab_up, node_pids, online_from, pcs, wait_for
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.process import ProcTable, is_alive

PROCESSES = ProcTable()
VIP = "192.168.213.50"


def test_three_nodes_come_online_with_a_dc(lab):
    assert online_from(lab, "node1") == {"node1", "node2", "node3"}
    status = cluster_view(lab, "node2")
    assert status.has_quorum and status.dc in {"node1", "node2", "node3"}


def test_nodes_reach_each_other_and_nothing_else(lab):
    assert inside(lab, "node1", "ip", "route").stdout.split()[0] == "192.168.213.0/24"
    assert "default" not in inside(lab, "node1", "ip", "route").stdout
    result = inside(lab, "node1", "getent", "hosts", "node3")
    assert result.stdout.split()[0] == "192.168.213.13"


def test_the_vagrant_lab_gets_the_same_corosync_conf_and_hosts(lab):
    """vagrant/provision.sh writes what `stackha lab corosync-conf|hosts` print: the same bytes
    the namespace lab gave its nodes, so the two labs cannot drift."""
    stackha = str(Path(sys.executable).parent / "stackha")
    printed = subprocess.run(
        [stackha, "lab", "corosync-conf", "--nodes", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert printed == (lab.directory / "node2" / "etc/corosync/corosync.conf").read_text()
    hosts = subprocess.run(
        [stackha, "lab", "hosts", "--nodes", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert hosts in inside(lab, "node1", "cat", "/etc/hosts").stdout


def test_the_inventory_names_every_bmc_and_is_private(lab):
    inventory = json.loads(lab.inventory_path.read_text())
    assert [n["bmc"]["address"] for n in inventory["nodes"]] == [
        "192.168.213.101",
        "192.168.213.102",
        "192.168.213.103",
    ]
    assert os.stat(lab.inventory_path).st_mode & 0o077 == 0


def test_bmc_power_off_kills_the_node_and_power_on_brings_it_back(lab):
    """ipmitool over real UDP: off really is off; on boots the node back into the cluster."""
    before = node_pids(lab, "node3")
    assert (
        lab.ipmitool("node3", ["chassis", "power", "status"]).stdout.strip()
        == "Chassis Power is on"
    )
    assert lab.ipmitool("node3", ["chassis", "power", "off"]).ok
    assert not any(is_alive(PROCESSES, pid) for pid in before)
    assert (
        lab.ipmitool("node3", ["chassis", "power", "status"]).stdout.strip()
        == "Chassis Power is off"
    )
    wait_for(lambda: "node3" not in online_from(lab, "node1"), "node3 seen offline")
    assert lab.ipmitool("node3", ["chassis", "power", "on"]).ok
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node3 back")


def test_a_wrong_bmc_password_is_refused(lab):
    result = lab.ipmitool("node2", ["chassis", "power", "status"], password="wrong")
    assert not result.ok


def started_on(vip):
    """Where the VIP runs: crm_mon also lists a start still in flight ("Starting") as active."""
    started = vip.active and vip.role == "Started" and not vip.failed
    return vip.nodes[0] if started and vip.nodes else None


def vip_holder(lab):
    status = cluster_view(lab, "node1")
    (vip,) = status.instances("vip")
    return started_on(vip)


def test_a_crashed_node_leaves_a_quorate_pair_that_runs_its_resources(lab):
    pcs(lab, "property", "set", "stonith-enabled=false")
    pcs(lab, "resource", "create", "dummy", "ocf:pacemaker:Dummy", "clone")
    pcs(
        lab,
        "resource",
        "create",
        "vip",
        "ocf:heartbeat:IPaddr2",
        f"ip={VIP}",
        "cidr_netmask=24",
        "op",
        "monitor",
        "interval=5s",
        "--wait=60",
    )
    holder = wait_for(lambda: vip_holder(lab), "VIP started")
    survivors = sorted({"node1", "node2", "node3"} - {holder})
    lab.crash(holder)
    watcher = survivors[0]

    def moved():
        status = cluster_view(lab, watcher)
        if status is None or not status.has_quorum:
            return None
        (vip,) = status.instances("vip")
        node = started_on(vip)
        return node if node in survivors else None

    new_holder = wait_for(moved, "VIP restarted on a survivor")
    assert online_from(lab, watcher) == set(survivors)
    assert VIP in inside(lab, new_holder, "ip", "-o", "addr", "show", "eth0").stdout
    dummies = [d for d in cluster_view(lab, watcher).instances("dummy") if d.active]
    assert sorted(n for d in dummies for n in d.nodes) == survivors
    # The crashed node is dead but its BMC still says on: a reset brings it back.
    assert lab.power_state(holder) == "on"
    assert lab.ipmitool(holder, ["chassis", "power", "reset"]).ok
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node back")


def test_a_partitioned_node_loses_quorum_and_rejoins_after_heal(lab):
    lab.partition(["node3"])
    wait_for(
        lambda: (s := cluster_view(lab, "node3")) and not s.has_quorum,
        "node3 without quorum",
        timeout=60,
    )
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2"}, "node1 sees two")
    lab.heal()
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "rejoined")
    wait_for(lambda: (s := cluster_view(lab, "node3")) and s.has_quorum, "node3 quorate")


def test_fence_ipmilan_fences_a_node_whose_corosync_dies(lab):
    """The incumbent fence agent against the lab's BMCs: the node is powered off and on."""
    password = lab.inventory()["nodes"][0]["bmc"]["password"]
    pcs(lab, "resource", "delete", "vip", "--force")
    for index in (1, 2, 3):
        pcs(
            lab,
            "stonith",
            "create",
            f"fence-node{index}",
            "fence_ipmilan",
            f"ip=192.168.213.10{index}",
            "ipport=623",
            "username=admin",
            f"password={password}",
            "lanplus=1",
            f"pcmk_host_list=node{index}",
        )
        pcs(lab, "constraint", "location", f"fence-node{index}", "avoids", f"node{index}")
    pcs(lab, "property", "set", "stonith-enabled=true")
    before = node_pids(lab, "node2")
    corosync = inside(lab, "node2", "pgrep", "-x", "corosync").stdout.split()
    assert len(corosync) == 1
    assert inside(lab, "node2", "kill", "-9", corosync[0]).ok
    wait_for(
        lambda: not any(is_alive(PROCESSES, p) for p in before), "node2 powered off", timeout=90
    )
    wait_for(
        lambda: online_from(lab, "node1") == {"node1", "node2", "node3"},
        "node2 rebooted and back",
        timeout=120,
    )
    history = inside(lab, "node1", "stonith_admin", "--history", "node2").stdout
    assert "reboot" in history and "successful" in history.lower()


def test_up_refuses_a_directory_with_a_running_lab(lab):
    with pytest.raises(LabError, match="a lab already exists in"):
        Lab(str(lab.directory)).up(nodes=1)


def test_the_cli_shows_status_and_runs_commands_in_nodes(lab):
    stackha = str(Path(sys.executable).parent / "stackha")
    status = subprocess.run(
        [stackha, "lab", "--dir", str(lab.directory), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert [n["name"] for n in json.loads(status.stdout)["nodes"]] == ["node1", "node2", "node3"]
    text = subprocess.run(
        [stackha, "lab", "--dir", str(lab.directory), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for name in ("node1", "node2", "node3"):
        (line,) = [line for line in text.splitlines() if line.split()[:1] == [name]]
        assert "power on   running  corosync=running pacemakerd=running" in line, text
    hostname = subprocess.run(
        [stackha, "lab", "--dir", str(lab.directory), "exec", "node2", "--", "hostname"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert hostname.stdout == "node2\n"


def test_status_tells_a_node_whose_pacemaker_stopped(lab):
    """pacemakerd gone on a powered, running node (as when Pacemaker shuts itself down on
    learning the node was fenced): status says so, corosync still running; a power cycle
    brings both back."""
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "all online")
    pacemakerd = inside(lab, "node2", "pgrep", "-x", "pacemakerd").stdout.split()
    assert inside(lab, "node2", "kill", "-TERM", pacemakerd[0]).ok

    def daemons():
        return next(n for n in lab.status()["nodes"] if n["name"] == "node2")["daemons"]

    wait_for(lambda: daemons()["pacemakerd"] == "stopped", "pacemakerd seen stopped")
    node = next(n for n in lab.status()["nodes"] if n["name"] == "node2")
    assert (node["power"], node["running"], node["daemons"]["corosync"]) == ("on", True, "running")
    lab.set_power("node2", "cycle")
    # during the POST the BMC says on, and neither daemon runs yet
    assert lab.power_state("node2") == "on"
    assert lab.node("node2").daemons() == {"corosync": "stopped", "pacemakerd": "stopped"}
    # node1 may still count node2 online from before its power cycle: its daemons first
    running = {"corosync": "running", "pacemakerd": "running"}
    wait_for(lambda: daemons() == running, "node2's daemons started after its POST", timeout=90)
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node2 back")


def host_pids():
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def net_namespace(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None  # gone meanwhile, or a kernel thread


def test_down_leaves_no_process_namespace_or_file(packaged, tmp_path):
    directory = tmp_path / "lab"
    lab = Lab(str(directory))
    lab_up(lab, packaged, nodes=2, subnet="192.168.214.0/24", timeout=120)
    state = lab.load()
    pids = [state.switch_init_pid, state.switch_holder_pid] + [
        p for n in state.nodes for p in [n.init_pid, n.bmc_pid, *n.helper_pids] if p
    ]
    assert all(is_alive(PROCESSES, pid) for pid in pids)
    namespaces = {
        os.readlink(f"/proc/{pid}/ns/net")
        for pid in (state.switch_init_pid, state.nodes[0].init_pid)
    }
    lab.down()
    assert not any(is_alive(PROCESSES, pid) for pid in pids)
    # nothing at all is left in the lab's network namespaces, recorded pid or not
    assert not [pid for pid in host_pids() if net_namespace(pid) in namespaces]
    assert not directory.exists()
    assert lab.down() == []  # a second down finds nothing and fails on nothing


def fence_apc(lab, *options, password=None):
    """The unmodified fence-agents fence_apc, run in the lab switch against the lab PDU."""
    pdu = lab.inventory()["pdu"]
    argv = [
        "fence_apc",
        "--ip",
        pdu["address"],
        "--username",
        pdu["username"],
        "--password",
        password or pdu["password"],
        *options,
    ]
    return lab.switch().runner.run(argv, timeout=60)


SSH = ["--ssh", "--ssh-options=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"]


def test_pdu_lists_one_outlet_per_node_over_telnet(lab):
    result = fence_apc(lab, "--action", "list")
    assert result.ok, result.stdout + result.stderr
    assert result.stdout.split() == ["1,node1", "2,node2", "3,node3"]


@pytest.mark.parametrize("transport", [[], SSH], ids=["telnet", "ssh"])
def test_a_pdu_outlet_powers_its_node_off_and_on(lab, transport):
    """fence_apc over telnet and over a real SSH server: off kills node3, on brings it back."""
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "all online")
    before = node_pids(lab, "node3")
    assert (
        fence_apc(lab, *transport, "--plug", "3", "--action", "status").stdout.strip()
        == "Status: ON"
    )
    off = fence_apc(lab, *transport, "--plug", "3", "--action", "off")
    assert off.ok, off.stdout + off.stderr
    assert not any(is_alive(PROCESSES, pid) for pid in before)
    status = fence_apc(lab, *transport, "--plug", "3", "--action", "status")
    assert (status.returncode, status.stdout.strip()) == (2, "Status: OFF")
    assert fence_apc(lab, *transport, "--plug", "3", "--action", "on").ok
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node3 back")


@pytest.mark.parametrize("transport", [[], SSH], ids=["telnet", "ssh"])
def test_the_pdu_refuses_a_wrong_password(lab, transport):
    result = fence_apc(lab, *transport, "--plug", "1", "--action", "status", password="wrong")
    assert result.returncode == 1
    assert lab.power_state("node1") == "on"
