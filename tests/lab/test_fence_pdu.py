"""fence_stackha_pdu against the lab PDU over telnet and a real sshd, and a fencing topology
with the PDU as level 2 behind IPMI."""

from __future__ import annotations

import re
import time

import pytest
from agent_runs import command_lines_watched_for
from lab_helpers import inside, node_pids, online_from, pcs, wait_for
from stackha.process import ProcTable, is_alive

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


DROPPER = """
import socket, sys, threading
listen, target = sys.argv[1], sys.argv[2]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((listen, 23))
server.listen(4)

def pump(source, sink, watch):
    try:
        while True:
            data = source.recv(4096)
            if not data or (watch and b"olOff" in data):
                break  # the PDU goes away in the middle of the command
            sink.sendall(data)
    except OSError:
        pass
    for end in (source, sink):
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

while True:
    client, _ = server.accept()
    pdu = socket.create_connection((target, 23))
    threading.Thread(target=pump, args=(client, pdu, True), daemon=True).start()
    threading.Thread(target=pump, args=(pdu, client, False), daemon=True).start()
"""
DROPPER_ADDRESS = "192.168.213.98"


@pytest.fixture
def dropping_pdu(lab, tmp_path):
    import sys

    from stackha.runner import Spawn

    script = tmp_path / "dropper.py"
    script.write_text(DROPPER)
    switch = lab.switch()
    switch.add_address(DROPPER_ADDRESS, 24)
    pid = switch.runner.spawn(
        Spawn(
            (sys.executable, "-I", str(script), DROPPER_ADDRESS, lab.inventory()["pdu"]["address"])
        )
    )
    wait_for(
        lambda: (
            switch.runner.run(
                [
                    sys.executable,
                    "-I",
                    "-c",
                    "import socket,sys; socket.create_connection(sys.argv[1:3])",
                    DROPPER_ADDRESS,
                    "23",
                ],
                timeout=10,
            ).ok
        ),
        "dropper listening",
        timeout=10,
        interval=0.1,
    )
    yield
    PROCESSES.signal(pid, 9)
    switch.runner.run(
        ["/sbin/ip", "addr", "del", f"{DROPPER_ADDRESS}/24", "dev", "br0"], timeout=10
    )


def test_a_pdu_that_drops_the_connection_mid_command_fails_cleanly(lab, dropping_pdu):
    """A dropped connection may pass (issue 14: a fence agent asks again until power_timeout),
    but one that drops every time fails inside that deadline with one warning and one error,
    and nothing was switched."""
    credentials = lab.inventory()["pdu"]
    started = time.monotonic()
    result = lab.switch().runner.run(
        [AGENT],
        stdin=f"ip={DROPPER_ADDRESS}\nusername=apc\npassword={credentials['password']}\n"
        "action=off\nplug=2\npower_timeout=6\n",
        timeout=60,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 1
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith(f"WARNING: power off: PDU {DROPPER_ADDRESS}: connection closed")
    assert warning.endswith("; asking again")
    assert error.startswith(f"ERROR: PDU {DROPPER_ADDRESS}: connection closed")
    assert "(asked " in error and " times in 6s)" in error
    assert 6 <= seconds < 20
    assert lab.power_state("node2") == "on"


def test_no_pdu_password_on_any_command_line_over_ssh(lab):
    """ssh is a child process here: the password is typed at its prompt, never on its argv."""
    password = lab.inventory()["pdu"]["password"]
    with command_lines_watched_for(password) as seen:
        for _ in range(3):
            assert pdu(lab, *SSH, "action=status", "plug=1").returncode == 0
    assert seen == []
