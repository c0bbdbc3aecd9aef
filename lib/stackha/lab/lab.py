"""The namespace lab: a real Corosync + Pacemaker cluster of N nodes on one machine.

``DIR/lab.json`` records every process the lab started (by pid), so any later command — and
``down`` of a half-built lab — can find them; ``DIR/inventory.json`` (mode 0600) is what
templates and tests read: node and BMC addresses, BMC credentials. State changes happen under a
lock on ``DIR/lab.lock``, since BMC simulators power nodes off and on from their own processes.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import sys
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stackha.clock import Deadline, SystemClock
from stackha.lab import corosync_conf, package, release
from stackha.lab.accounts import Accounts
from stackha.lab.namespaces import (
    LabError,
    NamespaceRunner,
    end_processes,
    missing_programs,
    start_init,
)
from stackha.lab.node import Node, daemons_by_pid_namespace
from stackha.lab.rootfs import CHROOT, DEFAULT_CACHE_DIR
from stackha.lab.switch import Switch
from stackha.process import ProcTable, wait_until
from stackha.runner import CommandError, Spawn, SubprocessRunner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any, Callable, Optional

    from stackha.clock import Clock
    from stackha.process import ProcessTable
    from stackha.runner import Result, Runner

DEFAULT_DIR = "/var/lib/stackha/lab"
DEFAULT_SUBNET = "192.168.213.0/24"
CLUSTER_NAME = "stackha-lab"
BMC_PORT = 623
BMC_USER = "admin"
PDU_USER = "apc"
PDU_UID = 4242  # the PDU's login user exists only in the PDU's own /etc/passwd
PDU_TELNET_PORT = 23
PDU_SSH_PORT = 22
IPMITOOL = "/usr/bin/ipmitool"
# Programs the lab runs, and the Debian package each comes from.
REQUIRED = {
    "/usr/sbin/corosync": "corosync",
    "/usr/sbin/pacemakerd": "pacemaker",
    "/usr/sbin/cibadmin": "pacemaker-cli-utils",
    "/usr/sbin/corosync-keygen": "corosync",
    "/usr/bin/tini": "tini",
    "/usr/bin/unshare": "util-linux",
    "/usr/bin/nsenter": "util-linux",
    "/sbin/ip": "iproute2",
    IPMITOOL: "ipmitool",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/bin/openssl": "openssl",
}
# Properties of the first CIB. dc-deadtime: a fresh cluster otherwise waits 20 s for a DC that
# cannot exist yet (most of a 3-node lab's start-up time).
SEED_PROPERTIES = {"dc-deadtime": "2s"}
# What workload provisioning writes into the lab's directory, for every node to read:
# stackha.lab.openstack's HAProxy configuration. down removes it with the lab's own files.
HAPROXY_CONFIG = "haproxy.cfg"
# What stackha.lab.deploy writes there: the site file, the CIBs rendered from it, what
# stackha cib apply printed (its diffs), and the fencing passwords' directory (root-only files
# that the CIB's password_script reads).
SITE_FILE = "site.ini"
RENDERED_CIBS = ("cib-infrastructure.xml", "cib-everything.xml")
DEPLOY_LOG = "deploy.log"
FENCING_DIR = "fencing"
# Where up builds the stackha package when it is given none (stackha.lab.package).
PACKAGE_DIR = "deb"
# Nodes of a release (stackha.lab.release): the lab's layer of the stackha packages.
LAYER_DIR = "layer"
# How long a node's resources may take to stop or move before a reinstall gives up on it
# (Galera's and RabbitMQ's stop timeouts are 120 s).
STOP_CLUSTER_S = 300.0
# Seconds between a node's power-on and the start of its cluster daemons (its POST). Real
# servers take minutes; a lab node would be back in one second, before the survivors have
# finished fencing it: the fencer's result reaches the cluster only once corosync has formed
# the membership without the dead node (token 3 s + consensus 3.6 s after its death), and a
# node back by then hears of its own fencing and its Pacemaker shuts itself down ("We were
# allegedly just fenced"). Measured with 3 s: the node fenced-rebooted through stonith_admin
# booted 3.2 s after its death, was in the new membership at 6.6 s, and stopped its Pacemaker.
DEFAULT_POST_DELAY = 10.0


@dataclass
class NodeState:
    name: str
    nodeid: int
    address: str
    bmc_address: str
    power: str = "off"  # what the BMC reports; a crashed node is dead but still "on"
    init_pid: Optional[int] = None
    helper_pids: list[int] = field(default_factory=list)
    bmc_pid: Optional[int] = None
    # A node reinstalled with another release (Lab.reinstall): its own release, tree and
    # layer; None: the lab's.
    release: Optional[str] = None
    tree: Optional[str] = None
    layer: Optional[str] = None


@dataclass
class LabState:
    subnet: str
    switch_address: str
    switch_holder_pid: Optional[int] = None
    switch_init_pid: Optional[int] = None
    # The topmost directory up created (None: it existed): down removes up to there, if empty.
    created_root: Optional[str] = None
    nodes: list[NodeState] = field(default_factory=list)
    pdu_address: Optional[str] = None
    pdu_pid: Optional[int] = None
    # The PDU's SSH server: its namespace holder and init, and the nsenter parent of sshd.
    pdu_ssh_pids: list[int] = field(default_factory=list)
    # Every boot's POST (see DEFAULT_POST_DELAY), recorded here for the BMC processes.
    post_delay: float = DEFAULT_POST_DELAY
    # The stackha package the nodes run (stackha.lab.package), and whether up installed it
    # (then down purges it; a package that was there before stays).
    package_version: Optional[str] = None
    package_installed: bool = False
    # Nodes of a named release (None: the nodes run the host's own files): the release, the
    # profile of its package list, the tree and the lab's layer of the stackha packages.
    release: Optional[str] = None
    profile: Optional[str] = None
    tree: Optional[str] = None
    layer: Optional[str] = None
    # The stackha and stackha-lab packages in the layers, for a layer of another release.
    debs: list[str] = field(default_factory=list)


def seed_cib(empty_cib: str, properties: dict[str, str]) -> str:
    """An empty CIB (from ``cibadmin --empty``) with cluster properties set."""
    root = ET.fromstring(empty_cib)
    crm_config = root.find("configuration/crm_config")
    if crm_config is None:
        raise LabError("cibadmin --empty gave a CIB without crm_config")
    options = ET.SubElement(crm_config, "cluster_property_set", id="cib-bootstrap-options")
    for name, value in properties.items():
        ET.SubElement(options, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
    return ET.tostring(root, encoding="unicode")


def plan(nodes: int, subnet: str) -> list[NodeState]:
    """Names, ids and addresses of a lab's nodes: node i at .10+i, its BMC at .100+i.

    The Vagrant lab uses the same plan (``stackha lab corosync-conf``).
    """
    network = ipaddress.ip_network(subnet)
    if network.num_addresses < 256:
        raise LabError(f"subnet {subnet} is too small: use a /24 or larger")
    if not 1 <= nodes <= 64:
        raise LabError(f"{nodes} nodes: a lab has 1 to 64 nodes")
    return [
        NodeState(f"node{i}", i, str(network[10 + i]), str(network[100 + i]))
        for i in range(1, nodes + 1)
    ]


def corosync_conf_for(nodes: Sequence[NodeState]) -> str:
    members = [corosync_conf.Member(n.name, n.nodeid, n.address) for n in nodes]
    return corosync_conf.render(CLUSTER_NAME, members)


def write_private(path: Path, text: str) -> None:
    """``text`` as the whole of the root-only file ``path`` (mode 0600 from its creation: the
    labs' inventories, states and secrets)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def inventory_of(
    nodes: Sequence[NodeState], subnet: str, password: str, pdu_address: str, pdu_password: str
) -> dict[str, Any]:
    """A lab's inventory, the one format both labs' BMCs, PDU, deploys and tests read: every
    node with its BMC, the PDU with an outlet per node (outlet i powers node i)."""
    return {
        "cluster_name": CLUSTER_NAME,
        "subnet": subnet,
        "nodes": [
            {
                "name": n.name,
                "address": n.address,
                "bmc": {
                    "address": n.bmc_address,
                    "port": BMC_PORT,
                    "username": BMC_USER,
                    "password": password,
                    "lanplus": True,
                },
            }
            for n in nodes
        ],
        "pdu": {
            "address": pdu_address,
            "telnet_port": PDU_TELNET_PORT,
            "username": PDU_USER,
            "password": pdu_password,
            "outlets": {str(n.nodeid): n.name for n in nodes},
        },
    }


def hosts_for(nodes: Sequence[NodeState]) -> str:
    """The /etc/hosts lines that name every node."""
    return "".join(f"{n.address} {n.name}\n" for n in nodes)


class Lab:
    """A lab in ``directory``: create it with :meth:`up`, end it with :meth:`down`."""

    def __init__(
        self,
        directory: str = DEFAULT_DIR,
        runner: Optional[Runner] = None,
        clock: Optional[Clock] = None,
        processes: Optional[ProcessTable] = None,
        progress: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.directory = Path(directory)
        self.runner = runner or SubprocessRunner()
        self.clock = clock or SystemClock()
        self.processes = processes or ProcTable()
        self.progress = progress or (lambda message: None)

    # -- state ------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.directory / "lab.json"

    @property
    def inventory_path(self) -> Path:
        return self.directory / "inventory.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.directory / "lab.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> LabState:
        try:
            data = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab in {self.directory} (run: stackha lab up)") from None
        nodes = [NodeState(**node) for node in data.pop("nodes")]
        return LabState(**data, nodes=nodes)

    def save(self, state: LabState) -> None:
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=1) + "\n")
        os.replace(temporary, self.state_path)

    def inventory(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.inventory_path.read_text())
        return data

    def _switch(self, state: LabState) -> Switch:
        return Switch(self.runner, self.processes, state.switch_init_pid or 0)

    def _node(self, state: LabState, node: NodeState) -> Node:
        return Node(
            self.runner,
            self.processes,
            node.name,
            node.nodeid,
            node.address,
            ipaddress.ip_network(state.subnet).prefixlen,
            self.directory / node.name,
            init_pid=node.init_pid,
            helper_pids=node.helper_pids,
            lower=self._lower(state, node),
        )

    @staticmethod
    def _lower(state: LabState, node: NodeState) -> tuple[str, ...]:
        """The layers ``node`` boots, topmost first: its own release's once it was reinstalled,
        else the lab's; none for the host's own files."""
        tree, layer = (node.tree, node.layer) if node.tree else (state.tree, state.layer)
        if not tree or not layer:
            return ()
        return (str(release.layer_upper(Path(layer))), tree)

    @staticmethod
    def _find(state: LabState, name: str) -> NodeState:
        for node in state.nodes:
            if node.name == name:
                return node
        raise LabError(f"no node {name} in this lab ({', '.join(n.name for n in state.nodes)})")

    # -- bring-up and tear-down -------------------------------------------------------------

    def up(
        self,
        nodes: int = 3,
        subnet: str = DEFAULT_SUBNET,
        timeout: float = 300.0,
        post_delay: float = DEFAULT_POST_DELAY,
        deb: Optional[str] = None,
        release_name: Optional[str] = None,
        profile: str = "stack",
        cache_dir: str = DEFAULT_CACHE_DIR,
    ) -> None:
        """Build the lab and wait until every node is online with a DC. On failure nothing stays.

        ``post_delay``: seconds from a node's power-on to the start of its cluster daemons.
        ``deb``: the stackha package the nodes run (installed with apt); None builds it from
        this checkout's working tree. ``release_name``: the nodes run that Debian release's
        tree for ``profile`` (:mod:`stackha.lab.release`, cached in ``cache_dir``) with the
        package in a layer of their own; None: the host's own files, the package installed there.
        """
        if release_name is not None:
            release.packages(release_name, profile)  # an unknown release or profile: say so now
        if post_delay < 0:
            raise LabError(f"post delay {post_delay}: a number of seconds, 0 or more")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (namespaces, mounts, a bridge): run it as root")
        missing = missing_programs(REQUIRED)
        if missing:
            raise LabError(f"missing Debian packages: {', '.join(missing)}; run: make deps")
        planned = plan(nodes, subnet)
        if self.state_path.exists():
            raise LabError(f"a lab already exists in {self.directory}: stackha lab down first")
        created_root = None
        for candidate in [self.directory, *self.directory.parents]:
            if candidate.exists():
                break
            created_root = str(candidate)
        self.directory.mkdir(parents=True, exist_ok=True)
        network = ipaddress.ip_network(subnet)
        state = LabState(
            subnet=str(network),
            switch_address=str(network[1]),
            created_root=created_root,
            pdu_address=str(network[99]),
            post_delay=post_delay,
            release=release_name,
            profile=profile if release_name else None,
        )
        state.nodes = planned
        with self.locked():
            self.save(state)
        try:
            if release_name:
                self._install_layer(state, deb, cache_dir)
            else:
                self._install_package(state, deb)
            self._build(state, Deadline(self.clock, timeout))
        except BaseException:
            self.progress("bring-up failed: removing what was made")
            self.down()
            raise

    def _install_package(self, state: LabState, deb: Optional[str]) -> None:
        if deb is None:
            self.progress("package: building stackha from this checkout (scripts/build-deb)")
            path = package.build(self.runner, self.directory / PACKAGE_DIR)
        else:
            path = Path(deb)
        state.package_installed = package.install(self.runner, path, self.progress)
        state.package_version = package.deb_version(path)
        with self.locked():
            self.save(state)

    def _install_layer(self, state: LabState, deb: Optional[str], cache_dir: str) -> None:
        """Nodes of a release: the release's tree (built unless cached), and the lab's layer of
        the stackha and stackha-lab packages on it. The host's own packages stay as they are."""
        assert state.release and state.profile
        self.progress(f"tree: {state.release} ({release.RELEASES[state.release]}), {state.profile}")
        tree = release.node_tree(
            self.runner, state.release, state.profile, cache_dir, self.progress
        )
        state.tree = str(tree)
        if deb is None:
            self.progress("package: building stackha from this checkout (scripts/build-deb)")
            path = package.build(self.runner, self.directory / PACKAGE_DIR)
        else:
            path = Path(deb).resolve()
            if not path.is_file():
                raise LabError(f"{path}: no such package file")
        debs = [path, release.lab_package(path)]
        state.debs = [str(deb) for deb in debs]
        layer = self.directory / LAYER_DIR
        state.layer = str(layer)
        with self.locked():
            self.save(state)
        release.install_layer(self.runner, tree, layer, debs, self.processes, self.clock)
        state.package_version = package.deb_version(path)
        with self.locked():
            self.save(state)
        self.progress(f"package: {', '.join(d.name for d in debs)} in the nodes' layer {layer}")

    def _build(self, state: LabState, deadline: Deadline) -> None:
        prefix = ipaddress.ip_network(state.subnet).prefixlen
        switch = Switch(self.runner, self.processes)
        state.switch_holder_pid = switch.create(
            state.switch_address, prefix, deadline, str(self.directory / "switch.log")
        )
        state.switch_init_pid = switch.init_pid
        with self.locked():
            self.save(state)
        self.progress(f"switch: bridge {state.subnet} in its own network namespace")
        key = self.directory / "authkey"
        self._run(["/usr/sbin/corosync-keygen", "-k", str(key)])
        os.chmod(key, 0o400)
        # the nodes' own Pacemaker writes the first CIB: its schema is the one they validate with
        cibadmin = ["/usr/sbin/cibadmin", "--empty"]
        if state.tree:
            cibadmin = [CHROOT, state.tree, *cibadmin]
        cib = seed_cib(self._run(cibadmin).stdout, SEED_PROPERTIES)
        conf = corosync_conf_for(state.nodes)
        hosts = "127.0.0.1 localhost\n" + hosts_for(state.nodes)
        password = secrets.token_hex(8)  # IPMI 2.0 passwords are at most 20 bytes
        self._write_inventory(state, password, secrets.token_hex(8))
        for node_state in state.nodes:
            node = self._node(state, node_state)
            node.prepare(conf, key.read_bytes(), hosts, cib)
            switch.add_address(node_state.bmc_address, prefix)
            with self.locked():
                # The lab's first boot has no POST: nothing is fencing yet, and every test
                # module would wait for it.
                node.boot(switch, deadline)
                node_state.init_pid, node_state.helper_pids = node.init_pid, node.helper_pids
                node_state.power = "on"
                self.save(state)
            self.progress(f"{node.name}: booted at {node.address}")
        for node_state in state.nodes:
            node_state.bmc_pid = self._start_bmc(state, node_state)
            with self.locked():
                self.save(state)
        for node_state in state.nodes:
            wait_until(
                lambda n=node_state: self._bmc_answers(n, password),  # type: ignore[misc]
                deadline,
                f"BMC of {node_state.name} answering",
                interval=0.1,
            )
        self.progress(f"BMCs: IPMI on {', '.join(n.bmc_address for n in state.nodes)} port 623")
        self._start_pdu(state, deadline)
        self.progress(f"PDU: {state.pdu_address}, telnet and SSH, outlet N powers nodeN")
        self.wait_online(deadline)

    def _run(
        self, argv: Sequence[str], timeout: float = 30.0, stdin: Optional[str] = None
    ) -> Result:
        try:
            return self.runner.run(argv, timeout=timeout, check=True, stdin=stdin)
        except CommandError as err:
            raise LabError(str(err)) from err

    def _write_inventory(self, state: LabState, password: str, pdu_password: str) -> None:
        assert state.pdu_address is not None
        inventory = inventory_of(
            state.nodes, state.subnet, password, state.pdu_address, pdu_password
        )
        # the namespace lab's own: its switch, and the PDU's SSH side
        inventory["switch_address"] = state.switch_address
        inventory["pdu"]["ssh_port"] = PDU_SSH_PORT
        write_private(self.inventory_path, json.dumps(inventory, indent=1) + "\n")

    def _start_bmc(self, state: LabState, node: NodeState) -> int:
        switch = self._switch(state)
        return switch.runner.spawn(
            Spawn(
                # -I: nothing from the caller's environment changes what the simulator imports.
                (sys.executable, "-I", "-m", "stackha.lab.bmc", str(self.directory), node.name),
                output_path=str(self.directory / f"bmc-{node.name}.log"),
            )
        )

    def _start_pdu(self, state: LabState, deadline: Deadline) -> None:
        """The PDU: its CLI server, and Debian's sshd in a mount namespace of its own whose
        /etc/passwd and /etc/shadow know the PDU's login user (the host's files are untouched)."""
        assert state.pdu_address is not None
        prefix = ipaddress.ip_network(state.subnet).prefixlen
        switch = self._switch(state)
        switch.add_address(state.pdu_address, prefix)
        state.pdu_pid = switch.runner.spawn(
            Spawn(
                (sys.executable, "-I", "-m", "stackha.lab.pdu", "serve", str(self.directory)),
                output_path=str(self.directory / "pdu.log"),
            )
        )
        with self.locked():
            self.save(state)
        pdu = self.directory / "pdu"
        pdu.mkdir(mode=0o755, exist_ok=True)
        credentials = self.inventory()["pdu"]
        assert isinstance(credentials, dict)
        hashed = self._run(
            ["/usr/bin/openssl", "passwd", "-6", "-stdin"], stdin=str(credentials["password"])
        ).stdout.strip()
        passwd = Path("/etc/passwd").read_text()
        shadow = Path("/etc/shadow").read_text()
        (pdu / "passwd").write_text(
            passwd + f"{PDU_USER}:x:{PDU_UID}:65534:lab PDU:/nonexistent:/bin/sh\n"
        )
        (pdu / "shadow").write_text(shadow + f"{PDU_USER}:{hashed}:19000:0:99999:7:::\n")
        os.chmod(pdu / "shadow", 0o600)
        key = pdu / "ssh_host_ed25519_key"
        self._run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        (pdu / "sshd_config").write_text(
            f"""ListenAddress {state.pdu_address}:{PDU_SSH_PORT}
HostKey {key}
PidFile none
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
PermitRootLogin no
AllowUsers {PDU_USER}
StrictModes no
PrintMotd no
PrintLastLog no
ForceCommand {sys.executable} -I -m stackha.lab.pdu relay
"""
        )
        holder, init = start_init(
            switch.runner,
            self.processes,
            ["--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private"],
            deadline,
            str(self.directory / "pdu-ssh.log"),
        )
        state.pdu_ssh_pids = [init, holder]
        with self.locked():
            self.save(state)
        inside = NamespaceRunner(self.runner, init, namespaces="nmp")
        for step in (
            ["/bin/mount", "--bind", str(pdu / "passwd"), "/etc/passwd"],
            ["/bin/mount", "--bind", str(pdu / "shadow"), "/etc/shadow"],
            ["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"],
            ["/bin/mkdir", "-p", "/run/sshd"],
        ):
            try:
                inside.run(step, timeout=10, check=True)
            except CommandError as err:
                raise LabError(f"PDU SSH server: {' '.join(step)}: {err}") from err
        state.pdu_ssh_pids.append(
            inside.spawn(
                Spawn(
                    ("/usr/sbin/sshd", "-D", "-e", "-f", str(pdu / "sshd_config")),
                    output_path=str(self.directory / "pdu-ssh.log"),
                )
            )
        )
        with self.locked():
            self.save(state)
        for port in (PDU_TELNET_PORT, PDU_SSH_PORT):
            wait_until(
                lambda p=port: self._answers(state.pdu_address or "", p),  # type: ignore[misc]
                deadline,
                f"PDU port {port} answering",
                interval=0.05,
            )

    def _answers(self, address: str, port: int) -> bool:
        """Whether something accepts TCP connections at address:port in the lab switch."""
        probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)"
        argv = [sys.executable, "-I", "-c", probe, address, str(port)]
        return self.switch().runner.run(argv, timeout=10).ok

    def _bmc_answers(self, node: NodeState, password: str) -> bool:
        try:
            return self.ipmitool(node.name, ["chassis", "power", "status"], password).ok
        except CommandError:
            return False

    def ipmitool(self, name: str, command: Sequence[str], password: Optional[str] = None) -> Result:
        """Run ``ipmitool`` against a node's BMC from inside the lab switch.

        The password goes through the environment (``-E``), never the command line.
        """
        state = self.load()
        node = self._find(state, name)
        if password is None:
            password = str(self._bmc_credentials()["password"])
        return self._switch(state).runner.run(
            [
                IPMITOOL,
                "-I",
                "lanplus",
                "-H",
                node.bmc_address,
                "-p",
                str(BMC_PORT),
                "-U",
                BMC_USER,
                "-E",
                *command,
            ],
            timeout=20,
            env={"IPMI_PASSWORD": password},
        )

    def _bmc_credentials(self) -> dict[str, object]:
        nodes = self.inventory()["nodes"]
        assert isinstance(nodes, list)
        bmc: dict[str, object] = nodes[0]["bmc"]
        return bmc

    def wait_online(self, deadline: Deadline, names: Optional[Sequence[str]] = None) -> None:
        """Wait until the given nodes (default: every powered node) are online with a DC."""
        state = self.load()
        wanted = set(names or [n.name for n in state.nodes if n.power == "on"])
        seen = [""]

        def formed() -> bool:
            for node_state in state.nodes:
                if node_state.name not in wanted:
                    continue
                status = self._node(state, node_state).status()
                if status is None:
                    continue
                online = wanted & set(status.online_nodes)
                summary = f"{len(online)}/{len(wanted)} nodes online, DC: {status.dc or 'none'}"
                if summary != seen[0]:
                    seen[0] = summary
                    self.progress(summary)
                return status.dc is not None and online == wanted
            return False

        wait_until(formed, deadline, f"{len(wanted)} nodes online with a DC", interval=0.5)

    def down(self) -> list[str]:
        """End every process the lab started (by pid) and remove what it wrote. Idempotent."""
        if not self.state_path.exists():
            return []
        state = self.load()
        done = []
        deadline = Deadline(self.clock, 30)
        simulators = ("python", "nsenter")  # BMC and PDU processes (nsenter execs python)
        end_processes(
            self.processes,
            [p for p in [*(n.bmc_pid for n in state.nodes), state.pdu_pid] if p],
            deadline,
            simulators,
        )
        for node_state in state.nodes:
            self._node(state, node_state).kill(deadline)
            done.append(node_state.name)
        end_processes(self.processes, state.pdu_ssh_pids, deadline)
        end_processes(
            self.processes,
            [p for p in (state.switch_init_pid, state.switch_holder_pid) if p],
            deadline,
        )
        for node_state in state.nodes:
            shutil.rmtree(self.directory / node_state.name, ignore_errors=True)
        shutil.rmtree(self.directory / "pdu", ignore_errors=True)
        shutil.rmtree(self.directory / PACKAGE_DIR, ignore_errors=True)
        release.remove_layer(self.directory / LAYER_DIR)
        for other in self.directory.glob(f"{LAYER_DIR}-*"):
            release.remove_layer(other)
        if state.package_installed:
            # before lab.json goes: if apt fails, a second down tries again
            package.remove(self.runner)
            state.package_installed = False
            with self.locked():
                self.save(state)
        for name in (
            "authkey",
            "inventory.json",
            "switch.log",
            "pdu.log",
            "pdu-ssh.log",
            "lab.json",
            "lab.tmp",
            "lab.lock",
            HAPROXY_CONFIG,
            SITE_FILE,
            *RENDERED_CIBS,
            DEPLOY_LOG,
        ):
            (self.directory / name).unlink(missing_ok=True)
        shutil.rmtree(self.directory / FENCING_DIR, ignore_errors=True)
        for log in [*self.directory.glob("bmc-*.log"), *self.directory.glob("bmc-*.test-*")]:
            log.unlink()
        if state.created_root:
            for directory in [self.directory, *self.directory.parents]:
                try:
                    directory.rmdir()
                except OSError:
                    break  # something else lives there: not ours to remove
                if str(directory) == state.created_root:
                    break
        return done

    # -- operations -------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """A node of this lab as it is now (its runner runs commands inside it)."""
        state = self.load()
        return self._node(state, self._find(state, name))

    def switch(self) -> Switch:
        """The lab's switch (its runner runs commands in the lab's network)."""
        return self._switch(self.load())

    def system(self) -> Path:
        """The root of the system the nodes run: their release's tree, or the host's ``/``.
        Provisioning reads the packages' own files (their /etc defaults) from there."""
        tree = self.load().tree
        return Path(tree) if tree else Path("/")

    def accounts(self) -> Accounts:
        """The nodes' users and groups (their own account files, not the host's)."""
        return Accounts(self.system())

    def node_runner(self, name: str) -> NamespaceRunner:
        return self.node(name).runner

    def service_pid(self, name: str, pid_files: Sequence[str], process: str) -> int:
        """The pid, in node ``name``'s own pid namespace, of the live ``process`` that one of
        ``pid_files`` names (a stale pid file naming another process does not count)."""
        runner = self.node_runner(name)
        for path in pid_files:
            result = runner.run(["/bin/cat", path], timeout=10)
            text = result.stdout.strip()
            if not result.ok or not text.isdigit():
                continue
            comm = runner.run(["/bin/cat", f"/proc/{text}/comm"], timeout=10)
            if comm.ok and comm.stdout.strip() == process:
                return int(text)
        raise LabError(f"{name}: no live {process} named in {' or '.join(pid_files)}")

    def kill_9(self, names: Sequence[str], pid_files: Sequence[str], process: str) -> None:
        """SIGKILL to ``process`` on each node (found with :meth:`service_pid`), by pid, inside
        the node's own pid namespace; every pid is read first, so that they die together."""
        pids = {name: self.service_pid(name, pid_files, process) for name in names}
        for name, pid in pids.items():
            if not self.node_runner(name).run(["/bin/kill", "-9", str(pid)], timeout=10).ok:
                raise LabError(f"{name}: kill -9 {pid} failed")

    def crash(self, name: str) -> None:
        """Everything on the node dies at once; its BMC still says it is on (it hangs)."""
        with self.locked():
            state = self.load()
            node_state = self._find(state, name)
            node = self._node(state, node_state)
            node.kill(Deadline(self.clock, 10))
            node_state.init_pid, node_state.helper_pids = None, []
            self.save(state)

    def set_power(self, name: str, action: str) -> str:
        """What a BMC does: ``off`` kills the node, ``on`` boots it, ``cycle``/``reset`` both.

        Returns the power state afterwards.
        """
        with self.locked():
            state = self.load()
            node_state = self._find(state, name)
            node = self._node(state, node_state)
            if action in ("off", "cycle", "reset"):
                node.kill(Deadline(self.clock, 10))
                node_state.power = "off"
            if action in ("on", "cycle", "reset") and not node.is_running:
                node.boot(self._switch(state), Deadline(self.clock, 30), state.post_delay)
                node_state.power = "on"
            node_state.init_pid, node_state.helper_pids = node.init_pid, node.helper_pids
            self.save(state)
            return node_state.power

    def reinstall(self, name: str, release_name: str) -> None:
        """Reinstall node ``name`` with ``release_name``, as an operator upgrades a node: the
        cluster stopped on it cleanly (Node.stop_cluster: its resources move, nobody fences
        it), power off, a fresh system of that release (its tree, a layer of the lab's stackha
        packages on it, an empty upper: the old system's own changes are gone), the node's
        disks kept (its CIB, its databases, its queues) with their owners mapped by name to the
        new system's ids, power on. The node then runs the new release beside nodes of the old
        one."""
        release.check_release(release_name)
        state = self.load()
        if not state.release or not state.profile:
            raise LabError("reinstall needs a lab of releases: stackha lab up --release …")
        tree = release.node_tree(self.runner, release_name, state.profile, log=self.progress)
        if release_name == state.release:
            layer = Path(state.layer or self.directory / LAYER_DIR)
        else:
            layer = self.directory / f"{LAYER_DIR}-{release_name}"
            if not layer.exists():
                debs = [Path(deb) for deb in state.debs]
                if not debs or not all(deb.is_file() for deb in debs):
                    raise LabError(f"the lab's packages are gone ({', '.join(state.debs)})")
                release.install_layer(self.runner, tree, layer, debs, self.processes, self.clock)
        with self.locked():
            state = self.load()
            node_state = self._find(state, name)
            node = self._node(state, node_state)
            old = node.accounts
            if node_state.power == "on":
                node.stop_cluster(Deadline(self.clock, STOP_CLUSTER_S))
            node.kill(Deadline(self.clock, 10))
            node_state.power = "off"
            node_state.init_pid, node_state.helper_pids = None, []
            node_state.release, node_state.tree, node_state.layer = (
                release_name,
                str(tree),
                str(layer),
            )
            self.save(state)
            node = self._node(state, node_state)
            node.reinstall_system(old)
            node.boot(self._switch(state), Deadline(self.clock, 30), state.post_delay)
            node_state.power = "on"
            node_state.init_pid, node_state.helper_pids = node.init_pid, node.helper_pids
            self.save(state)
        self.progress(f"{name}: reinstalled with {release_name} ({release.RELEASES[release_name]})")

    def power_state(self, name: str) -> str:
        return self._find(self.load(), name).power

    def partition(self, names: Sequence[str]) -> None:
        """Cut these nodes' links to the switch."""
        state = self.load()
        for name in names:
            self._switch(state).set_port(self._node(state, self._find(state, name)).port, up=False)

    def heal(self) -> None:
        """Restore every node's link to the switch."""
        state = self.load()
        for node_state in state.nodes:
            node = self._node(state, node_state)
            if node.is_running:
                self._switch(state).set_port(node.port, up=True)

    def status(self) -> dict[str, object]:
        """Nodes, their power, whether they run and are linked, whether their corosync and
        pacemakerd run, and the cluster as one sees it."""
        state = self.load()
        nodes = []
        cluster = None
        daemons = daemons_by_pid_namespace()
        for node_state in state.nodes:
            node = self._node(state, node_state)
            running = node.is_running
            linked = running and self._switch(state).port_is_up(node.port)
            nodes.append(
                {
                    "name": node.name,
                    "address": node.address,
                    "bmc": node_state.bmc_address,
                    "release": node_state.release or state.release,
                    "power": node_state.power,
                    "running": running,
                    "linked": linked,
                    "daemons": node.daemons(daemons),
                }
            )
            if cluster is None and running and linked:
                status = node.status()
                if status is not None:
                    cluster = {
                        "seen_from": node.name,
                        "dc": status.dc,
                        "quorum": status.has_quorum,
                        "online": list(status.online_nodes),
                        "resources": [
                            {"id": r.id, "role": r.role, "nodes": list(r.nodes), "failed": r.failed}
                            for r in status.resources
                        ],
                    }
        return {
            "directory": str(self.directory),
            "subnet": state.subnet,
            "release": state.release,
            "post_delay": state.post_delay,
            "nodes": nodes,
            "cluster": cluster,
        }
