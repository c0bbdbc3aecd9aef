"""The lab switch keeps one MAC address whatever plugs into it or leaves it.

The BMC and PDU simulators (and a client in the lab's network) listen on addresses of the bridge
itself. Left to the kernel, a bridge's MAC follows the lowest MAC of its ports: a crashed node's
veth leaving, or a rebooted node's new one joining, changed it, the nodes' ARP entries for those
addresses pointed at a MAC nobody had any more, and for 5-9 s no fence device answered — just
when a node had to be fenced (bench/README.md, openstack_stack.py's timeline).
"""

from __future__ import annotations

import re

from stackha.lab.switch import BRIDGE, IP

ETHER = re.compile(r"link/ether ([0-9a-f:]{17})")


def bridge_mac(lab):
    result = lab.switch().runner.run([IP, "-o", "link", "show", BRIDGE], timeout=10)
    assert result.ok, result.output_line()
    return ETHER.search(result.stdout).group(1)


def port_macs(lab):
    """{port: MAC} of the bridge's ports (one veth per node)."""
    result = lab.switch().runner.run([IP, "-o", "link", "show", "master", BRIDGE], timeout=10)
    assert result.ok, result.output_line()
    ports = {}
    for line in result.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        ports[name] = ETHER.search(line).group(1)
    return ports


def test_the_bridge_keeps_its_mac_when_the_lowest_port_leaves_and_a_new_one_joins(lab):
    before = bridge_mac(lab)
    ports = port_macs(lab)
    assert len(ports) == 3, ports
    port = min(ports, key=ports.get)  # the port whose MAC the kernel would give the bridge
    node = next(n.name for n in lab.load().nodes if n.name in port)
    lab.crash(node)
    assert bridge_mac(lab) == before, f"the bridge's MAC changed when {node}'s {port} left"
    lab.set_power(node, "on")
    assert bridge_mac(lab) == before, f"the bridge's MAC changed when {node} plugged in again"
