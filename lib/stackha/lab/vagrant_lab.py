"""The Vagrant lab: the namespace lab's cluster on real VMs, brought up and removed in one step.

``stackha lab vagrant-up`` (``make vagrant-lab``) does, in order:

1. the hypervisor: libvirtd in a network and mount namespace of the lab's own
   (:class:`stackha.lab.vagrant_host.Hypervisor`), so the host's libvirt, if any, is untouched;
2. the box (``stackha-<release>``, :mod:`stackha.lab.vagrant_box`, built by the caller and
   cached) added to Vagrant's home inside the lab's directory;
3. ``vagrant up --provider=libvirt`` with ``vagrant/Vagrantfile``: the VMs, provisioned by
   ``vagrant/provision.sh`` as the namespace lab provisions its nodes, KVM when the processor
   virtualizes and QEMU's software emulation (TCG) when it does not;
4. a BMC per VM and the PDU (:mod:`stackha.lab.vagrant_bmc`) at the namespace lab's addresses
   (.100+i, .99) on the cluster network's bridge, their passwords in the lab's inventory (mode
   0600) and, for the fence agents, in ``/etc/stackha/fencing/bmc.password`` and
   ``pdu.password`` of every VM (sent over ssh's stdin);
5. every node online in one quorate cluster, as node1's ``crm_mon`` says.

``stackha lab vagrant-down`` (``make vagrant-lab-down``) destroys the VMs and their volumes
(``vagrant destroy -f``), stops the hypervisor (every process of its namespace by pid: libvirtd,
dnsmasq, qemu, the BMCs; the namespace; its state) and removes the lab's directory. A failed
``up`` does the same before it says why: nothing half-made is left.

Commands in the VMs go over ssh inside the hypervisor's network namespace (the VMs' management
network exists only there) with the configuration ``vagrant ssh-config`` printed once: one ssh
per command, without Vagrant's Ruby start-up each time (:class:`VmRunner`).
"""

from __future__ import annotations

import glob
import ipaddress
import json
import secrets
import shlex
import shutil
import sys
import time
from pathlib import Path

from stackha.clock import Deadline
from stackha.lab.deploy import node_sections
from stackha.lab.lab import (
    CLUSTER_NAME,
    DEFAULT_SUBNET,
    PDU_USER,
    inventory_of,
    plan,
    write_private,
)
from stackha.lab.namespaces import LabError, missing_programs
from stackha.lab.openstack import HAPROXY_STATS_SOCKET
from stackha.lab.switch import IP
from stackha.lab.vagrant_bmc import INVENTORY, PDU, SYSTEM_URI, VIRSH
from stackha.lab.vagrant_host import Hypervisor
from stackha.pacemaker import crm_mon
from stackha.process import ProcessError, wait_until
from stackha.runner import CommandError, Spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Optional

    from stackha.clock import Clock
    from stackha.process import ProcessTable
    from stackha.runner import Result, Runner

DEFAULT_DIR = "/var/lib/stackha/vagrant-lab"
# The checkout's vagrant/ (the Vagrantfile and provision.sh are not in the Debian package).
CHECKOUT_VAGRANT_DIR = Path(__file__).resolve().parents[3] / "vagrant"
HYPERVISOR = "hypervisor"
STATE = "lab.json"
SSH_CONFIG = "ssh_config"
VAGRANT_STATE = "vagrant-state"  # VAGRANT_DOTFILE_PATH: the machines' ids, not in the checkout
SHARED = "shared"  # the Vagrantfile's STACKHA_SHARED: the corosync authkey it makes
# The Vagrantfile's names (vagrant/Vagrantfile).
CLUSTER_NETWORK = "stackha-lab"
MANAGEMENT = "192.168.214.0/24"
FENCING_PASSWORD = "/etc/stackha/fencing/bmc.password"
PDU_PASSWORD = "/etc/stackha/fencing/pdu.password"
BMC_MODULE = "stackha.lab.vagrant_bmc"
SITE_FILE = "/etc/stackha/site.ini"
CIB_FILE = "/etc/stackha/cib.xml"
HAPROXY_CONFIG = "/etc/stackha/haproxy.cfg"
# Where HAProxy answers on every VM, the VIP's VM for the VIP (haproxy_config).
HAPROXY_PORT = 8080
# In the VMs (Debian's paths): stackha from the box's package.
STACKHA = "/usr/bin/stackha"
VM_IP = "/usr/sbin/ip"
VAGRANT = "/usr/bin/vagrant"
SSH = "/usr/bin/ssh"
RSYNC = "/usr/bin/rsync"
# What the lab runs besides the hypervisor's programs, and the Debian package of each.
REQUIRED: Mapping[str, str] = {
    VAGRANT: "vagrant",
    SSH: "openssh-client",
    RSYNC: "rsync",
}
VAGRANT_LIBVIRT_GLOB = "/usr/share/rubygems-integration/all/specifications/vagrant-libvirt-*"

UP_TIMEOUT_S = 3600.0
ONLINE_TIMEOUT_S = 600.0
DESTROY_TIMEOUT_S = 600.0
SSH_TIMEOUT_S = 120.0
DEPLOY_TIMEOUT_S = 300.0
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class VmRunner:
    """A runner whose commands run as root in one VM of the lab (ssh, then sudo), each argument
    quoted for the VM's shell, ``env`` set in the VM (``env NAME=VALUE``: never secrets, which
    ``ps`` in the VM would show). Standard input goes through ssh's: secrets go there."""

    def __init__(self, hypervisor: Hypervisor, ssh_config: Path, node: str) -> None:
        self.hypervisor = hypervisor
        self.ssh_config = ssh_config
        self.node = node

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        settings = [f"{name}={value}" for name, value in (env or {}).items()]
        command = ["env", *settings, *argv] if settings else list(argv)
        remote = shlex.join(["sudo", "--non-interactive", "--", *command])
        return self.hypervisor.run(
            [SSH, "-F", str(self.ssh_config), "-o", "BatchMode=yes", self.node, remote],
            timeout=timeout,
            stdin=stdin if stdin is not None else "",
            env={"PATH": PATH},
            check=check,
        )

    def spawn(self, spec: Spawn) -> int:
        raise LabError(f"{self.node}: the Vagrant lab starts no process in a VM from the host")


class VagrantLab:
    """A Vagrant lab whose state lives in ``directory`` (see the module's text)."""

    def __init__(
        self,
        runner: Runner,
        processes: ProcessTable,
        clock: Clock,
        directory: Path = Path(DEFAULT_DIR),
        vagrant_dir: Path = CHECKOUT_VAGRANT_DIR,
        progress: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.runner = runner
        self.processes = processes
        self.clock = clock
        self.directory = directory
        self.vagrant_dir = vagrant_dir
        self.progress = progress or (lambda message: None)
        self.hypervisor = Hypervisor(runner, processes, clock, directory / HYPERVISOR)

    @property
    def state_path(self) -> Path:
        return self.directory / STATE

    def load(self) -> dict[str, object]:
        try:
            data: dict[str, object] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            raise LabError(f"no Vagrant lab in {self.directory}: stackha lab vagrant-up") from None
        return data

    def _save(self, state: dict[str, object]) -> None:
        write_private(self.state_path, json.dumps(state, indent=1) + "\n")

    def nodes(self) -> list[str]:
        count = self.load()["nodes"]
        assert isinstance(count, int)
        return [f"node{i}" for i in range(1, count + 1)]

    def vm(self, node: str) -> VmRunner:
        """A runner into ``node`` (node1, node2 …)."""
        if node not in self.nodes():
            raise LabError(f"no VM {node} in the Vagrant lab (it has {', '.join(self.nodes())})")
        return VmRunner(self.hypervisor, self.directory / SSH_CONFIG, node)

    # -- up -----------------------------------------------------------------------------------

    def up(
        self,
        box: Path,
        release: str,
        nodes: int = 3,
        subnet: str = DEFAULT_SUBNET,
        memory_mib: int = 1024,
        cpus: int = 1,
        accel: str = "tcg",
        timeout: float = UP_TIMEOUT_S,
    ) -> dict[str, float]:
        """Bring the lab up (see the module's text) from the box file ``box`` of ``release``;
        returns the seconds of each step. Raises LabError (one line) when the host lacks a
        program, the settings collide, a lab is already up, or a step fails; a failed step's
        work is undone first."""
        self._refuse(box, nodes, subnet, memory_mib, cpus, accel)
        deadline = Deadline(self.clock, timeout)
        box_name = box.name[: -len(".box")]  # what the Vagrantfile's STACKHA_BOX names
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._save(
            {
                "nodes": nodes,
                "subnet": subnet,
                "release": release,
                "box": box_name,
                "memory_mib": memory_mib,
                "cpus": cpus,
                "accel": accel,
                "bmcs": {},
            }
        )
        timings: dict[str, float] = {}
        try:
            self._step(timings, "hypervisor", self.hypervisor.start)
            self._step(
                timings,
                "box added",
                lambda: self._vagrant(
                    ["box", "add", "--force", "--name", box_name, str(box)], deadline
                ),
            )
            self._step(
                timings,
                f"{nodes} VMs up and provisioned ({accel})",
                lambda: self._vagrant(["up", "--provider=libvirt"], deadline),
            )
            self._step(timings, "ssh configuration", lambda: self._ssh_config(deadline))
            self._step(timings, "BMCs and PDU", lambda: self._start_power(nodes, subnet))
            self._step(
                timings,
                "cluster online",
                lambda: self.wait_online(
                    Deadline(self.clock, min(ONLINE_TIMEOUT_S, max(deadline.remaining(), 1)))
                ),
            )
        except BaseException as failure:
            self.progress(f"vagrant-up failed: {failure}; removing what it made")
            try:
                self.down()
            except LabError as cleanup:
                raise LabError(f"{failure}; cleaning up after it: {cleanup}") from failure
            raise
        return timings

    def _refuse(
        self, box: Path, nodes: int, subnet: str, memory_mib: int, cpus: int, accel: str
    ) -> None:
        missing = missing_programs(REQUIRED)
        if not glob.glob(VAGRANT_LIBVIRT_GLOB):
            missing.append("vagrant-libvirt (Vagrant's libvirt provider)")
        if missing:
            raise LabError(f"missing Debian packages: {', '.join(missing)}; install them with apt")
        if not (self.vagrant_dir / "Vagrantfile").is_file():
            raise LabError(
                f"no Vagrantfile in {self.vagrant_dir}: the Vagrant lab runs from a checkout"
            )
        if self.state_path.exists():
            raise LabError(
                f"a Vagrant lab is up in {self.directory}: stackha lab vagrant-down first"
            )
        if not box.is_file():
            raise LabError(f"{box}: no such box (stackha lab vagrant-box builds it)")
        try:
            network = ipaddress.ip_network(subnet)
        except ValueError as err:
            raise LabError(f"subnet {subnet}: {err}") from None
        if network.prefixlen != 24 or network.version != 4:
            raise LabError(f"subnet {subnet}: the Vagrant lab takes an IPv4 /24")
        if network.overlaps(ipaddress.ip_network(MANAGEMENT)):
            raise LabError(
                f"subnet {subnet} collides with the Vagrant lab's management network {MANAGEMENT}"
            )
        plan(nodes, subnet)  # the namespace lab's limits on nodes and subnet
        if memory_mib < 512:
            raise LabError(f"{memory_mib} MiB per VM: a node needs 512 or more")
        if cpus < 1:
            raise LabError(f"{cpus} processors per VM: 1 or more")
        if accel not in ("kvm", "tcg"):
            raise LabError(f"acceleration {accel}: kvm or tcg")
        if self.hypervisor.namespace_taken():
            raise LabError(
                f"network namespace {self.hypervisor.namespace} exists: another Vagrant lab runs"
                " (stackha lab vagrant-down --lab-dir ITS_DIR), one at a time"
            )

    def _step(self, timings: dict[str, float], what: str, work: Callable[[], object]) -> None:
        started = time.monotonic()
        work()
        timings[what] = time.monotonic() - started
        self.progress(f"{what}: {timings[what]:.1f}s")

    def _environment(self) -> dict[str, str]:
        """What the Vagrantfile reads (vagrant/Vagrantfile's settings), from the lab's state."""
        state = self.load()
        subnet = ipaddress.ip_network(str(state["subnet"]))
        return {
            "PATH": PATH,
            "VAGRANT_DOTFILE_PATH": str(self.directory / VAGRANT_STATE),
            "STACKHA_NODES": str(state["nodes"]),
            "STACKHA_SUBNET": str(subnet.network_address).rsplit(".", 1)[0],
            "STACKHA_BOX": str(state["box"]),
            "STACKHA_MEMORY": str(state["memory_mib"]),
            "STACKHA_CPUS": str(state["cpus"]),
            "STACKHA_ACCEL": str(state["accel"]),
            "STACKHA_MANAGEMENT": MANAGEMENT,
            "STACKHA_SHARED": str(self.directory / SHARED),
        }

    def _vagrant(self, argv: Sequence[str], deadline: Deadline) -> Result:
        result = self.hypervisor.run(
            [VAGRANT, *argv],
            timeout=max(deadline.remaining(), 1),
            cwd=str(self.vagrant_dir),
            env=self._environment(),
        )
        if not result.ok:
            raise LabError(f"vagrant {' '.join(argv)}: {vagrant_error(result)}")
        return result

    def _ssh_config(self, deadline: Deadline) -> None:
        result = self._vagrant(["ssh-config"], deadline)
        write_private(self.directory / SSH_CONFIG, result.stdout)

    def _start_power(self, nodes: int, subnet: str) -> None:
        """A BMC per VM and the PDU on the cluster network's bridge (the namespace lab's
        addresses); their passwords in the inventory and in every VM's fencing password
        files."""
        bridge = self.bridge()
        prefix = ipaddress.ip_network(subnet).prefixlen
        password, pdu_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        planned = plan(nodes, subnet)
        pdu_address = pdu_address_of(subnet)
        inventory = inventory_of(planned, subnet, password, pdu_address, pdu_password)
        write_private(self.directory / INVENTORY, json.dumps(inventory, indent=1) + "\n")
        state = self.load()
        simulators: dict[str, int] = {}
        for name, address in [(n.name, n.bmc_address) for n in planned] + [("pdu", pdu_address)]:
            self._in_namespace([IP, "addr", "add", f"{address}/{prefix}", "dev", bridge])
            argument = PDU if name == "pdu" else name
            simulators[name] = self.hypervisor.spawn(
                Spawn(
                    (sys.executable, "-I", "-m", BMC_MODULE, str(self.directory), argument),
                    output_path=str(self.directory / f"bmc-{name}.log"),
                )
            )
        for node in planned:
            for path, secret in ((FENCING_PASSWORD, password), (PDU_PASSWORD, pdu_password)):
                self.vm(node.name).run(
                    ["install", "-D", "-m", "0600", "/dev/stdin", path],
                    timeout=SSH_TIMEOUT_S,
                    stdin=secret,
                    check=True,
                )
        state["bmcs"] = simulators
        self._save(state)

    def bridge(self) -> str:
        """The host side of the VMs' cluster network (``virsh net-info``)."""
        result = self._in_namespace([VIRSH, "-c", SYSTEM_URI, "net-info", CLUSTER_NETWORK])
        for line in result.stdout.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Bridge" and value.strip():
                return value.strip()
        raise LabError(f"libvirt network {CLUSTER_NETWORK} has no bridge: {result.output_line()}")

    def _in_namespace(self, argv: Sequence[str]) -> Result:
        try:
            return self.hypervisor.run(argv, timeout=60, env={"PATH": PATH}, check=True)
        except CommandError as err:
            raise LabError(f"{' '.join(argv[:3])}: {err}") from err

    # -- the cluster --------------------------------------------------------------------------

    def cluster_status(self, node: str = "node1") -> Optional[crm_mon.ClusterStatus]:
        """The cluster as ``node`` sees it, or None while it cannot tell."""
        try:
            return crm_mon.status(self.vm(node), timeout=SSH_TIMEOUT_S)
        except (CommandError, ValueError):
            return None

    def wait_online(self, deadline: Deadline, node: str = "node1") -> None:
        """Until every node is online in a quorate cluster with a DC, as ``node`` sees it."""
        wanted = set(self.nodes())

        def online() -> bool:
            status = self.cluster_status(node)
            return bool(
                status and status.dc and status.has_quorum and set(status.online_nodes) == wanted
            )

        try:
            wait_until(online, deadline, "every VM online in the cluster", interval=3)
        except ProcessError as err:
            status = self.cluster_status(node)
            seen = ", ".join(status.online_nodes) if status else "no answer"
            raise LabError(f"{err} (online as {node} sees it: {seen or 'none'})") from err

    def deploy(self, timeout: float = DEPLOY_TIMEOUT_S) -> str:
        """What a 2-core machine's VMs carry (see docs/lab.md): fencing through
        ``fence_stackha_ipmi`` at every VM's BMC and ``fence_stackha_pdu`` at the PDU, the
        HAProxy clone and the VIP, deployed the way the README tells an operator to — a site
        file on node1, ``stackha cib render``, ``check``, ``apply`` — and waited for. Returns
        the VIP's address."""
        state = self.load()
        subnet = str(state["subnet"])
        node1 = self.vm("node1")
        address = plan(len(self.nodes()), subnet)[0].address
        nic = interface_of(node1, address)
        site = vm_site_text(len(self.nodes()), subnet, nic)
        for name in self.nodes():
            self.vm(name).run(
                ["install", "-D", "-m", "0644", "/dev/stdin", HAPROXY_CONFIG],
                timeout=SSH_TIMEOUT_S,
                stdin=haproxy_config(name),
                check=True,
            )
        node1.run(
            ["install", "-D", "-m", "0644", "/dev/stdin", SITE_FILE],
            timeout=SSH_TIMEOUT_S,
            stdin=site,
            check=True,
        )
        for verb in (["render", SITE_FILE, "-o", CIB_FILE], ["check", CIB_FILE]):
            result = node1.run([STACKHA, "cib", *verb], timeout=SSH_TIMEOUT_S)
            if not result.ok:
                raise LabError(f"stackha cib {verb[0]} on node1: {result.output_line()}")
        applied = node1.run([STACKHA, "cib", "apply", CIB_FILE], timeout=SSH_TIMEOUT_S)
        if not applied.ok:
            raise LabError(f"stackha cib apply on node1: {applied.output_line()}")
        deadline = Deadline(self.clock, timeout)
        try:
            wait_until(self.deployed, deadline, "fencing, the HAProxy clone and the VIP", 3)
        except ProcessError as err:
            raise LabError(str(err)) from err
        return vip_of(subnet)

    def deployed(self) -> bool:
        """Every fence device (a BMC's per VM, the PDU's) and the VIP started, the HAProxy
        clone on every node, nothing failed, as node1 sees it."""
        status = self.cluster_status()
        if status is None or not status.dc:
            return False
        devices = [r for r in status.resources if r.agent.startswith("stonith:")]
        pdus = [r for r in devices if r.agent == "stonith:fence_stackha_pdu"]
        haproxy = status.instances("haproxy")
        on = {node for r in haproxy if r.active and not r.failed for node in r.nodes}
        vips = [r for r in status.resources if r.agent.endswith(":IPaddr2")]
        return (
            len(devices) == len(self.nodes()) + 1
            and len(pdus) == 1
            and all(r.active and not r.failed for r in devices + vips)
            and on == set(self.nodes())
            and len(vips) == 1
        )

    # -- down ---------------------------------------------------------------------------------

    def down(self) -> None:
        """Destroy the VMs and their volumes, stop the hypervisor (every process, the
        namespace, its state), remove the lab's directory. Idempotent."""
        try:
            state = self.load()
        except LabError:
            state = {}
        if self.hypervisor.running() and state:
            try:
                destroyed = self.hypervisor.run(
                    [VAGRANT, "destroy", "--force"],
                    timeout=DESTROY_TIMEOUT_S,
                    cwd=str(self.vagrant_dir),
                    env=self._environment(),
                )
                if not destroyed.ok:
                    self.progress(f"vagrant destroy: {vagrant_error(destroyed)}")
            except (LabError, CommandError, KeyError, ValueError) as err:
                # the VMs' processes, disks and definitions go with the hypervisor's state
                self.progress(f"vagrant destroy: {err!r}; ending the VMs with the hypervisor")
        self.hypervisor.stop()
        for entry in (STATE, INVENTORY, SSH_CONFIG):
            (self.directory / entry).unlink(missing_ok=True)
        if self.directory.is_dir():
            for path in self.directory.glob("bmc-*.log"):
                path.unlink()
            for made in (VAGRANT_STATE, SHARED):
                if (self.directory / made).is_dir():
                    shutil.rmtree(self.directory / made)
            try:
                self.directory.rmdir()
            except OSError:
                pass  # something else lives there: not ours to remove


def pdu_address_of(subnet: str) -> str:
    """The PDU's address: .99, as the namespace lab's."""
    return str(ipaddress.ip_network(subnet).network_address + 99)


def vip_of(subnet: str) -> str:
    """The VIP: .10 of the cluster network, below the nodes' .11 and up (as the namespace
    lab's)."""
    return str(ipaddress.ip_network(subnet).network_address + 10)


def interface_of(vm: VmRunner, address: str) -> str:
    """The name of the VM's interface that holds ``address`` (the cluster network's)."""
    shown = vm.run([VM_IP, "-o", "-4", "addr", "show", "to", address], timeout=SSH_TIMEOUT_S)
    words = shown.stdout.split()
    if not shown.ok or len(words) < 2:
        raise LabError(f"{vm.node} has no interface with {address}: {shown.output_line()}")
    return words[1]


def haproxy_config(
    node: str, bind: str = f":{HAPROXY_PORT}", stats_socket: str = HAPROXY_STATS_SOCKET
) -> str:
    """HAProxy on a VM of the lab: the stats socket the agent's depth-10 monitor asks, and
    ``HAPROXY_PORT`` on every address answering the VM's name, so a client of the VIP sees
    which VM holds it."""
    return f"""# written by stackha.lab.vagrant_lab
global
    stats socket {stats_socket} mode 600 level admin
    maxconn 1000

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend lab
    bind {bind}
    http-request return status 200 content-type text/plain string "{node}" hdr X-Node "{node}"
"""


def vm_site_text(nodes: int, subnet: str, nic: str) -> str:
    """The Vagrant lab's site file (crm-templates/site.example.ini): its VMs and their BMCs,
    fencing on, HAProxy (:func:`haproxy_config`) and the VIP."""
    prefix = ipaddress.ip_network(subnet).prefixlen
    lines = [
        "# The Vagrant lab's site, written by stackha.lab.vagrant_lab.",
        "[cluster]",
        f"name = {CLUSTER_NAME}",
        "services = haproxy",
        "stonith_enabled = true",
        "",
    ]
    lines += node_sections(plan(nodes, subnet), str(prefix), FENCING_PASSWORD)
    outlets = " ".join(f"{node.name}:{node.nodeid}" for node in plan(nodes, subnet))
    lines += [
        "[pdu lab]",
        f"address = {pdu_address_of(subnet)}",
        "transport = telnet",
        f"username = {PDU_USER}",
        f"password_file = {PDU_PASSWORD}",
        f"outlets = {outlets}",
        "",
        "[vip public]",
        f"address = {vip_of(subnet)}/{prefix}",
        f"nic = {nic}",
        "",
        "[service haproxy]",
        f"config = {HAPROXY_CONFIG}",
        "",
    ]
    return "\n".join(lines)


def vagrant_error(result: Result) -> str:
    """One line for a failed Vagrant command: the last line of the machines' output (what the
    VM or the provider said last) and the first of Vagrant's error message (its progress
    lines, ending in \\r, left out)."""

    def lines(text: str) -> list[str]:
        split = (line.strip() for line in text.replace("\r", "\n").splitlines())
        return [line for line in split if line and "Progress:" not in line]

    said = [*lines(result.stdout)[-1:], *lines(result.stderr)[:1]]
    return " | ".join(said) if said else f"exit status {result.returncode}"
