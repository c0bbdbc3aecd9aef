"""The Vagrant lab for real: three VMs from the box built here, a Pacemaker cluster on them with
the packaged agents, HAProxy and a VIP with fencing on (a BMC per VM, the PDU as the second
level), the VIP's VM fenced through its virtual BMC with fence_stackha_ipmi and back in the
cluster, then nothing left.

Runs under KVM where the processor virtualizes and QEMU's software emulation elsewhere (these
machines: a paravirtual /dev/kvm cannot run a Debian kernel). Needs root, libvirt's and Vagrant's
Debian packages (``make vagrant-check`` installs them) and the box's release tree (built once).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from stackha.clock import Deadline, SystemClock
from stackha.lab.lab import DEFAULT_SUBNET as SUBNET
from stackha.lab.vagrant_host import NAMESPACE
from stackha.lab.vagrant_lab import HAPROXY_PORT, vip_of
from stackha.process import wait_until

STACKHA = str(Path(sys.executable).parent / "stackha")
NODES = 3  # tests/vagrant/conftest.py brings up three
NAMES = [f"node{i}" for i in range(1, NODES + 1)]
DEBIAN_VERSION = {"bookworm": "12.", "trixie": "13."}
FENCED_BACK_S = 900


def test_three_vms_are_online_in_one_quorate_cluster(vagrant_lab):
    status = vagrant_lab.cluster_status()
    assert status is not None and status.dc and status.has_quorum
    assert sorted(status.online_nodes) == NAMES


def test_every_vm_runs_the_release_and_the_package_built_here(vagrant_lab, stackha_deb):
    built = subprocess.run(
        ["dpkg-deb", "--info", str(stackha_deb), "md5sums"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for name in NAMES:
        vm = vagrant_lab.vm(name)
        debian = vm.run(["cat", "/etc/debian_version"], timeout=60)
        release = str(vagrant_lab.load()["release"])
        assert debian.stdout.startswith(DEBIAN_VERSION[release]), (name, debian.stdout)
        # every file of the package is the one built from this tree
        package = vm.run(["cat", "/var/lib/dpkg/info/stackha.md5sums"], timeout=60)
        assert package.ok and package.stdout == built, (name, package.stderr)
        agents = vm.run(["crm_resource", "--list-agents", "ocf:stackha"], timeout=60)
        assert {"haproxy", "galera", "rabbitmq"} <= set(agents.stdout.split()), agents.stdout
        # a kernel of its own: these are VMs, not namespaces of the host
        assert vm.run(["uname", "-r"], timeout=60).stdout.strip() != _host_kernel()


def _host_kernel() -> str:
    return subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()


def test_haproxy_and_the_vip_start_with_fencing_through_the_bmcs(vagrant_lab):
    vip = vagrant_lab.deploy()
    assert vagrant_lab.deployed()
    status = vagrant_lab.cluster_status()
    assert status is not None and status.stonith_enabled
    devices = [r for r in status.resources if r.agent == "stonith:fence_stackha_ipmi"]
    assert len(devices) == NODES
    assert [r.id for r in status.resources if r.agent == "stonith:fence_stackha_pdu"] == [
        "fence-pdu-lab"
    ]
    # every VM's BMC answers our agent from another VM, with the device's own parameters (the
    # password through the file the CIB names, never on a command line)
    inventory = json.loads((vagrant_lab.directory / "inventory.json").read_text())
    for index, entry in enumerate(inventory["nodes"]):
        other = vagrant_lab.vm(NAMES[(index + 1) % NODES])
        options = (
            f"ip={entry['bmc']['address']}\nipport=623\nlanplus=1\nusername=admin\n"
            "password_script=/bin/cat /etc/stackha/fencing/bmc.password\naction=status\n"
        )
        status = other.run(["fence_stackha_ipmi"], timeout=120, stdin=options)
        assert status.ok and "ON" in status.stdout, (entry["name"], status.stdout, status.stderr)
    # the PDU (fencing's second level) answers our agent over telnet with every VM's power,
    # read from libvirt
    options = (
        f"ip={inventory['pdu']['address']}\nusername=apc\n"
        "password_script=/bin/cat /etc/stackha/fencing/pdu.password\naction=list-status\n"
    )
    listed = vagrant_lab.vm("node2").run(["fence_stackha_pdu"], timeout=120, stdin=options)
    assert listed.stdout == "1,node1,ON\n2,node2,ON\n3,node3,ON\n", listed.stderr
    # HAProxy answers on the VIP, from the VM Pacemaker put the VIP on, to every VM
    holder = vip_holder(vagrant_lab)
    for name in NAMES:
        assert answered_on_vip(vagrant_lab, name, vip) == holder, name


def vip_holder(vagrant_lab) -> str:
    status = vagrant_lab.cluster_status()
    assert status is not None
    vips = [r for r in status.resources if r.agent.endswith(":IPaddr2")]
    assert len(vips) == 1 and len(vips[0].nodes) == 1, vips
    return vips[0].nodes[0]


def answered_on_vip(vagrant_lab, name: str, vip: str) -> str:
    """The VM whose HAProxy answered ``name``'s request to the VIP (stackha.lab.vagrant_lab's
    HAProxy answers its VM's name)."""
    url = f"http://{vip}:{HAPROXY_PORT}/"
    answer = vagrant_lab.vm(name).run(["curl", "-sS", "--max-time", "10", url], timeout=60)
    assert answer.ok, (name, answer.stderr)
    return answer.stdout.strip()


def test_the_vip_vm_fenced_through_its_bmc_comes_back(vagrant_lab):
    victim = vip_holder(vagrant_lab)
    witness = next(name for name in NAMES if name != victim)
    boots_before = _boot_id(vagrant_lab, victim)
    started = time.monotonic()
    fenced = vagrant_lab.vm(witness).run(
        ["stonith_admin", "--reboot", victim, "--tolerance", "0", "--timeout", "120"],
        timeout=300,
    )
    fenced_in = time.monotonic() - started
    assert fenced.ok, fenced.stdout + fenced.stderr
    # the BMC did it: its log has the power command, the VM its new boot
    log = (vagrant_lab.directory / f"bmc-{victim}.log").read_text()
    assert f"{victim}: power " in log, log
    clock = SystemClock()

    def back() -> bool:
        return vagrant_lab.deployed() and _boot_id(vagrant_lab, victim) not in ("", boots_before)

    wait_until(back, Deadline(clock, FENCED_BACK_S), f"{victim} back in the cluster", interval=5)
    back_in = time.monotonic() - started
    status = vagrant_lab.cluster_status()
    assert status is not None and sorted(status.online_nodes) == NAMES
    assert not status.failures, status.failures
    # the VIP moved: HAProxy answers on it from another VM, to every VM
    holder = vip_holder(vagrant_lab)
    assert holder != victim
    for name in NAMES:
        assert answered_on_vip(vagrant_lab, name, vip_of(SUBNET)) == holder, name
    history = vagrant_lab.vm(witness).run(["stonith_admin", "--history", victim], timeout=60)
    assert "reboot" in history.stdout and "successful" in history.stdout.lower(), history.stdout
    sys.stderr.write(
        f"\nvagrant lab: {victim} fenced in {fenced_in:.1f}s, back in the cluster with every "
        f"resource after {back_in:.1f}s\n"
    )


def _boot_id(vagrant_lab, name: str) -> str:
    result = vagrant_lab.vm(name).run(["cat", "/proc/sys/kernel/random/boot_id"], timeout=30)
    return result.stdout.strip() if result.ok else ""


def test_down_leaves_no_vm_network_volume_namespace_or_process(vagrant_lab):
    pids = subprocess.run(
        ["ip", "netns", "pids", NAMESPACE], capture_output=True, text=True, timeout=30
    ).stdout.split()
    assert pids, "the hypervisor's namespace has no process before down"
    etc_before = _tree(Path("/etc/libvirt"))
    down = subprocess.run(
        [STACKHA, "lab", "vagrant-down", "--lab-dir", str(vagrant_lab.directory)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    left = [pid for pid in pids if running(int(pid))]
    assert not left, f"processes outlived down: {left}"
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    assert NAMESPACE not in netns.stdout.split()
    # the VMs' disks, networks and definitions lived in the lab's directory: gone with it
    assert not vagrant_lab.directory.exists(), list(vagrant_lab.directory.rglob("*"))
    assert _tree(Path("/etc/libvirt")) == etc_before
    assert not list(Path("/var/lib/libvirt/images").glob("stackha-*"))
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, timeout=30)
    names = [link["ifname"] for link in json.loads(links.stdout)]
    assert not [n for n in names if n.startswith("virbr") or n.startswith("vnet")], names


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has: its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _tree(path: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in sorted(path.rglob("*"))} if path.exists() else {}
