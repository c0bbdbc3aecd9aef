"""fence_stackha_pdu against the lab PDU over telnet and a real sshd, and a fencing topology
with the PDU as level 2 behind IPMI."""

from __future__ import annotations

import re

import pytest
from lab_helpers import inside, online_from, pcs, wait_for
from stackha.ocf.daemon import ProcTable, is_alive

PROCESSES = ProcTable()
AGENT = "/usr/sbin/fence_stackha_pdu"
SSH = ["ssh=1", "ssh_options=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"]


def pdu(lab, *lines, password=None, timeout=60):
    credentials = lab.inventory()["pdu"]
    stdin = (
        f"ip={credentials['address']}\nusername={credentials['username']}\n"
        f"password={password or credentials['password']}\n"
    )
    stdin += "".join(f"{line}\n" for line in lines)
    return lab.switch().runner.run([AGENT], stdin=stdin, timeout=timeout)


def node_pids(lab, name):
    entry = next(n for n in lab.load().nodes if n.name == name)
    return [p for p in [entry.init_pid, *entry.helper_pids] if p]


@pytest.mark.parametrize("transport", [[], SSH], ids=["telnet", "ssh"])
def test_list_and_list_status(lab, transport):
    assert pdu(lab, *transport, "action=list").stdout == "1,node1\n2,node2\n3,node3\n"
    result = pdu(lab, *transport, "action=list-status")
    assert result.stdout == "1,node1,ON\n2,node2,ON\n3,node3,ON\n", result.stderr


@pytest.mark.parametrize("transport", [[], SSH], ids=["telnet", "ssh"])
def test_outlet_by_name_or_number_off_and_on(lab, transport):
    before = node_pids(lab, "node3")
    off = pdu(lab, *transport, "action=off", "port=node3")
    assert (off.returncode, off.stdout) == (0, "Success: Powered OFF\n"), off.stderr
    assert not any(is_alive(PROCESSES, pid) for pid in before)
    status = pdu(lab, *transport, "action=status", "plug=3")
    assert (status.returncode, status.stdout) == (2, "Status: OFF\n")
    on = pdu(lab, *transport, "action=on", "plug=3")
    assert (on.returncode, on.stdout) == (0, "Success: Powered ON\n")
    wait_for(lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node3 back")


@pytest.mark.parametrize("transport", [[], SSH], ids=["telnet", "ssh"])
def test_a_wrong_password_is_refused(lab, transport):
    result = pdu(lab, *transport, "action=status", "plug=1", password="wrong")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("login refused for apc")


def test_an_unknown_ssh_host_key_is_a_clear_error(lab):
    result = pdu(
        lab, "action=status", "plug=1", "ssh=1", "ssh_options=-o UserKnownHostsFile=/dev/null"
    )
    assert result.returncode == 1
    assert "unknown SSH host key" in result.stderr


def test_an_unknown_outlet_name_is_named(lab):
    result = pdu(lab, "action=off", "plug=node9")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("no outlet named node9")


def test_fencing_topology_falls_back_to_the_pdu_when_the_bmc_is_unreachable(lab):
    """Level 1: IPMI per node. Level 2: the PDU. node2's BMC is cut off the network, its
    corosync killed: Pacemaker fences it through the PDU, and it comes back."""
    inventory = lab.inventory()
    pcs(lab, "property", "set", "stonith-enabled=false")
    for entry in inventory["nodes"]:
        name, credentials = entry["name"], entry["bmc"]
        pcs(
            lab,
            "stonith",
            "create",
            f"ipmi-{name}",
            "fence_stackha_ipmi",
            f"ip={credentials['address']}",
            "username=admin",
            f"password={credentials['password']}",
            f"pcmk_host_list={name}",
            "login_timeout=3",
        )
        pcs(lab, "constraint", "location", f"ipmi-{name}", "avoids", name)
    credentials = inventory["pdu"]
    host_map = ";".join(f"{node}:{outlet}" for outlet, node in credentials["outlets"].items())
    pcs(
        lab,
        "stonith",
        "create",
        "pdu",
        "fence_stackha_pdu",
        f"ip={credentials['address']}",
        f"username={credentials['username']}",
        f"password={credentials['password']}",
        f"pcmk_host_map={host_map}",
    )
    for entry in inventory["nodes"]:
        name = entry["name"]
        pcs(lab, "stonith", "level", "add", "1", name, f"ipmi-{name}")
        pcs(lab, "stonith", "level", "add", "2", name, "pdu")
    pcs(lab, "property", "set", "stonith-enabled=true")
    wait_for(
        lambda: inside(lab, "node1", "pcs", "stonith", "status").stdout.count("Started") >= 4,
        "fence devices started",
    )
    bmc_address = next(e for e in inventory["nodes"] if e["name"] == "node2")["bmc"]["address"]
    switch = lab.switch()
    switch.runner.run(
        ["/sbin/ip", "addr", "del", f"{bmc_address}/24", "dev", "br0"], timeout=10, check=True
    )
    try:
        before = node_pids(lab, "node2")
        corosync = inside(lab, "node2", "pgrep", "-x", "corosync").stdout.split()
        assert inside(lab, "node2", "kill", "-9", corosync[0]).ok
        wait_for(
            lambda: not any(is_alive(PROCESSES, p) for p in before), "node2 fenced", timeout=120
        )
    finally:
        switch.add_address(bmc_address, 24)
    wait_for(
        lambda: online_from(lab, "node1") == {"node1", "node2", "node3"}, "node2 back", timeout=120
    )
    history = inside(lab, "node1", "stonith_admin", "--history", "node2").stdout
    assert "reboot of node2 successful" in history, history
    delegate = history.split("delegate=")[1].split(",")[0]
    log = inside(lab, delegate, "cat", "/var/log/pacemaker/pacemaker.log").stdout
    assert re.search(r"targeting node2 using pdu returned 0", log), "not fenced by the PDU"
