"""One lab node: Linux namespaces that give real Corosync and Pacemaker a machine of their own.

A node is a PID namespace whose init is ``tini``, with its own network, mount and UTS namespaces.
Inside the mount namespace the directories the cluster daemons keep state in are bind-mounted
from private copies under the node's root directory, and ``/run`` and ``/dev/shm`` are fresh
tmpfs: libqb IPC uses ``/dev/shm`` files (per mount namespace) and abstract sockets (per network
namespace), so both must be private for two nodes' daemons not to meet. Commands run inside with
``nsenter``. Like a real machine, a node keeps its disks (the state directories, the CIB) across
a power cycle and loses ``/run``.

Killing the init by pid ends the node: the kernel kills every process in the PID namespace, and
the namespaces (and the node's end of its veth) go with their last process — the network
namespace some time later, in a kernel work queue: a new boot removes a veth left behind.

A boot models a server's POST: the namespaces, mounts and network are made at once (the BMC
says "on"), and corosync and pacemakerd start ``post_delay`` seconds later.

A node of a named release (``lower``: the directories of :mod:`stackha.lab.release`'s layers,
topmost first) runs its own system instead of the host's: its mount namespace mounts an overlay
of those layers with the node's ``upper`` directory on top, the state directories and the same
tmpfs mounts inside it, and then makes it its root with ``pivot_root``, so that every later
command entered with ``nsenter`` runs the release's programs with the release's libraries. Until
the pivot the host's ``mount`` makes the mounts (the tree is not the root yet); after it, the
tree's own ``umount`` lets go of the host's root. Owners come from the node's own account
files (:mod:`stackha.lab.accounts`).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from stackha.clock import Deadline
from stackha.lab.accounts import Accounts
from stackha.lab.namespaces import NSENTER, LabError, NamespaceRunner, end_processes, start_init
from stackha.lab.rootfs import MOUNT, UMOUNT, system_mounts
from stackha.pacemaker import crm_mon
from stackha.process import ProcessError, is_alive, wait_until
from stackha.runner import CommandError, Spawn
from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from stackha.lab.switch import Switch
    from stackha.process import ProcessTable
    from stackha.runner import Runner

# Host directory (relative to the node root) → where it is mounted inside the node.
STATE_DIRS: Mapping[str, str] = {
    "etc/corosync": "/etc/corosync",
    "var/lib/corosync": "/var/lib/corosync",
    "var/lib/pacemaker": "/var/lib/pacemaker",
    "var/log": "/var/log",
    # MariaDB: each node its own configuration and datadir (see stackha.lab.galera)
    "etc/mysql": "/etc/mysql",
    "var/lib/mysql": "/var/lib/mysql",
    # RabbitMQ: each node its own configuration, cookie and data (see stackha.lab.rabbitmq)
    "etc/rabbitmq": "/etc/rabbitmq",
    "var/lib/rabbitmq": "/var/lib/rabbitmq",
}
# The OpenStack API services' configuration and state (see stackha.lab.openstack), private per
# node like the ones above, but only where the package is installed: a lab for fencing or
# Galera must not need 240 packages of OpenStack, and a bind mount onto a missing directory
# would fail the node's boot. Each private copy gets the owner and mode of the host's directory
# (/var/lib/keystone is keystone's, 0750). Their logs, in /var/log/<user>, are private already:
# they live in the node's /var/log.
SERVICE_DIRS: Mapping[str, str] = {
    directory.lstrip("/"): directory
    for service in api_catalog.SERVICES
    for directory in service.lab.state_dirs
}
PACEMAKER_SUBDIRS = ("cib", "pengine", "blackbox", "cores")
RUN_DIRS = ("/run/crm", "/run/haproxy", "/run/resource-agents", "/run/lock")
# Run directories of a service user, made at every boot (/run is a fresh tmpfs, as on a real
# machine, where systemd's RuntimeDirectory= would make them) when the user exists.
USER_RUN_DIRS: Mapping[str, str] = {
    service.run_dir: service.user for service in api_catalog.SERVICES
}
# Kernel settings of the node's own network namespace, applied at every boot when the node's
# disk has this file (``key = value`` lines; only net.* keys: the others are the host's).
SYSCTL_FILE = "sysctl.conf"
SYSCTL = "/sbin/sysctl"
IP = "/sbin/ip"
# A node of a release: where its merged root is mounted (under the node's root directory), the
# directory its old root goes to for the moment of the pivot, and the tree's python3, which runs
# stackha.lab.post from the stackha-lab package in the node's layer.
MERGED = "merged"
UPPER = "upper"
WORK = "work"
OLD_ROOT = ".stackha-old-root"
PIVOT_ROOT = "/sbin/pivot_root"
MKDIR = "/bin/mkdir"
CHOWN = "/bin/chown"
NODE_PYTHON = "/usr/bin/python3"
# What a node boots, in order; `stackha lab status` says whether each runs.
DAEMONS = (("/usr/sbin/corosync", "-f"), ("/usr/sbin/pacemakerd", "-f"))
DAEMON_NAMES = tuple(os.path.basename(argv[0]) for argv in DAEMONS)
ROOT = Path("/")
# How long a boot waits for the switch end of the node's last veth to go.
OLD_PORT_GONE_S = 5.0


def service_dirs(system: Path = ROOT) -> dict[str, str]:
    """The :data:`SERVICE_DIRS` of the services installed in the system rooted at ``system``."""
    return {
        relative: target
        for relative, target in SERVICE_DIRS.items()
        if (system / target.lstrip("/")).is_dir()
    }


def user_run_dirs(accounts: Accounts) -> dict[str, str]:
    """The :data:`USER_RUN_DIRS` whose user exists in ``accounts``."""
    return {path: user for path, user in USER_RUN_DIRS.items() if accounts.has_user(user)}


def read_sysctls(text: str) -> list[tuple[str, str]]:
    """(key, value) of the ``net.*`` settings in a sysctl.conf text; other lines are ignored."""
    settings = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key.startswith("net.") and value:
            settings.append((key, value))
    return settings


def pid_namespace(pid: int, proc: str = "/proc") -> Optional[str]:
    """The identity of the PID namespace ``pid`` lives in (``pid:[4026532…]``), or None."""
    try:
        return os.readlink(f"{proc}/{pid}/ns/pid")
    except OSError:
        return None


def daemons_by_pid_namespace(
    proc: str = "/proc", names: Sequence[str] = DAEMON_NAMES
) -> dict[str, set[str]]:
    """For each PID namespace, which of the programs ``names`` have a live process in it."""
    return {
        namespace: set(programs)
        for namespace, programs in daemon_pids_by_pid_namespace(proc, names).items()
    }


def daemon_pids_by_pid_namespace(
    proc: str = "/proc", names: Sequence[str] = DAEMON_NAMES
) -> dict[str, dict[str, list[int]]]:
    """For each PID namespace, the (host) pids of the live processes of the programs ``names``
    in it, by program.

    One pass over ``proc``: every process's ``comm``, and the namespace link and state of the
    few whose name is wanted (a few milliseconds for a thousand processes). Zombies do not count.
    """
    found: dict[str, dict[str, list[int]]] = {}
    wanted = set(names)
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/comm", encoding="utf-8", errors="replace") as handle:
                name = handle.read().strip()
            if name not in wanted:
                continue
            with open(f"{entry.path}/stat", encoding="ascii", errors="replace") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        namespace = pid_namespace(int(entry.name), proc)
        if namespace is not None and state not in ("Z", "X"):
            found.setdefault(namespace, {}).setdefault(name, []).append(int(entry.name))
    return found


class Node:
    """A cluster node made of namespaces, with its disks under ``root``."""

    def __init__(
        self,
        runner: Runner,
        processes: ProcessTable,
        name: str,
        nodeid: int,
        address: str,
        prefix: int,
        root: Path,
        init_pid: Optional[int] = None,
        helper_pids: Optional[list[int]] = None,
        lower: Sequence[str] = (),
    ) -> None:
        self.host_runner = runner
        self.processes = processes
        self.name = name
        self.nodeid = nodeid
        self.address = address
        self.prefix = prefix
        self.root = root
        self.init_pid = init_pid
        # unshare and the nsenter parents of corosync and pacemakerd: ours to end by pid too.
        self.helper_pids = list(helper_pids or [])
        # the layers of a node of a release, topmost first (empty: the node runs the host's files)
        self.lower = tuple(lower)
        # the node's own system: its tree (the bottom layer), or the host's
        self.system = Path(self.lower[-1]) if self.lower else ROOT
        self.accounts = Accounts(self.system)

    @property
    def python(self) -> str:
        """The python3 that runs the lab's helpers inside this node: the release's own, or,
        on a node of the host's files, the one running this code."""
        return NODE_PYTHON if self.lower else sys.executable

    @property
    def port(self) -> str:
        """The node's interface name on the lab switch."""
        return f"v{self.name}"[:15]

    @property
    def runner(self) -> NamespaceRunner:
        if self.init_pid is None:
            raise LabError(f"node {self.name} is not running")
        return NamespaceRunner(self.host_runner, self.init_pid)

    @property
    def is_running(self) -> bool:
        return self.init_pid is not None and is_alive(self.processes, self.init_pid)

    def prepare(self, corosync_conf: str, authkey: bytes, hosts: str, cib: str) -> None:
        """Lay out the node's disks (host side): state directories, corosync files, first CIB."""
        for relative in STATE_DIRS:
            (self.root / relative).mkdir(parents=True, exist_ok=True)
        for relative, target in service_dirs(self.system).items():
            private = self.root / relative
            if not private.exists():
                host = os.stat(self.system / target.lstrip("/"))
                private.mkdir(parents=True)
                os.chown(private, host.st_uid, host.st_gid)
                os.chmod(private, host.st_mode & 0o7777)
        pacemaker = self.root / "var/lib/pacemaker"
        for sub in PACEMAKER_SUBDIRS:
            (pacemaker / sub).mkdir(exist_ok=True)
        for logs in ("var/log/cluster", "var/log/pacemaker"):
            (self.root / logs).mkdir(exist_ok=True)
        for path in [pacemaker, *pacemaker.iterdir(), self.root / "var/log/pacemaker"]:
            self.accounts.chown(path, "hacluster", "haclient")
        if self.lower:
            for directory in (UPPER, WORK, MERGED):
                (self.root / directory).mkdir(exist_ok=True)
            # the node's / shows the upper directory's mode, whatever the umask made it
            (self.root / UPPER).chmod(os.stat(self.system).st_mode & 0o7777)
        (self.root / "etc/corosync/corosync.conf").write_text(corosync_conf)
        key = self.root / "etc/corosync/authkey"
        key.write_bytes(authkey)
        os.chmod(key, 0o400)
        (self.root / "hosts").write_text(hosts)
        cib_file = pacemaker / "cib" / "cib.xml"
        cib_file.write_text(cib)
        os.chmod(cib_file, 0o600)
        self.accounts.chown(cib_file, "hacluster", "haclient")

    def boot(self, switch: Switch, deadline: Deadline, post_delay: float = 0.0) -> None:
        """Power on: new namespaces, private mounts, the network, then corosync and pacemakerd,
        which start ``post_delay`` seconds later (the machine's POST) without this waiting.

        A boot that fails half-way ends what it started before raising LabError with the step
        and its reason.
        """
        for layer in self.lower:
            if not os.path.isdir(layer):
                raise LabError(f"node {self.name}: its system layer {layer} is gone")
        try:
            self._boot(switch, deadline, post_delay)
        except BaseException:
            self.kill(Deadline(deadline.clock, 10))
            raise

    def _boot(self, switch: Switch, deadline: Deadline, post_delay: float) -> None:
        holder, self.init_pid = start_init(
            self.host_runner,
            self.processes,
            [
                "--net",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
            ],
            deadline,
            str(self.root / "init.log"),
        )
        self.helper_pids = [holder]
        inside = self.runner
        for step in self.mount_steps():
            self._step(inside, step, deadline)
        if self.lower:
            self._pivot(inside, deadline)
        self._remove_old_port(switch, deadline)
        switch.plug(self.port, self.init_pid, inside, self.address, self.prefix)
        # after plug: the network namespace's settings, now that it has its interfaces
        for key, value in self.sysctls():
            self._step(inside, [SYSCTL, "-q", "-w", f"{key}={value}"], deadline)
        logs = self.root / "var/log"
        for daemon, name in zip(DAEMONS, DAEMON_NAMES):
            argv: tuple[str, ...] = daemon
            if post_delay > 0:
                # -I: nothing from the caller's environment changes what it imports. A node of
                # a release runs the stackha-lab package's, with the release's python3.
                post = (self.python, "-I", "-m", "stackha.lab.post", f"{post_delay:g}", "--")
                argv = post + daemon
            out = str(logs / f"{name}.out")
            self.helper_pids.append(inside.spawn(Spawn(argv, output_path=out)))

    def mount_steps(self) -> list[list[str]]:
        """The commands, run in the node's fresh namespaces, that give it its disks and its
        private ``/run`` and ``/dev/shm``: bind mounts over the host's own directories, or for a
        node of a release, the whole system mounted under its ``merged`` directory."""
        # a service installed after the lab was made has no private copy: it stays the system's
        private = {r: t for r, t in service_dirs(self.system).items() if (self.root / r).is_dir()}
        mounts = {**STATE_DIRS, **private}
        owned_run_dirs = user_run_dirs(self.accounts)
        hacluster = "{}:{}".format(*self.accounts.ids("hacluster", "haclient"))
        owners = [
            (hacluster, "/run/crm"),
            *(
                ("{}:{}".format(*self.accounts.ids(user)), path)
                for path, user in owned_run_dirs.items()
            ),
        ]
        if not self.lower:
            base = ""
            steps: list[list[str]] = []
        else:
            base = str(self.root / MERGED)
            lab_dir = str(self.root.parent)
            layers = ":".join(self.lower)
            upper, work = self.root / UPPER, self.root / WORK
            steps = [
                # the overlay, the node's own proc (its PID namespace), sysfs (its network
                # namespace) and /dev
                *system_mounts(layers, str(upper), str(work), base),
                [MOUNT, "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{base}/tmp"],
                [MKDIR, "-p", *(base + target for target in mounts.values()), f"{base}/{OLD_ROOT}"],
                # the lab's directory where the host has it: what provisioning writes there (the
                # HAProxy configuration, the site file, the fencing passwords) is at the same
                # path on every node, as on nodes of the host's own files
                [MKDIR, "-p", base + lab_dir],
                [MOUNT, "--bind", lab_dir, base + lab_dir],
            ]
        steps += [
            [MOUNT, "--bind", str(self.root / relative), base + target]
            for relative, target in mounts.items()
        ]
        steps += [
            [MOUNT, "--bind", str(self.root / "hosts"), f"{base}/etc/hosts"],
            [MOUNT, "-t", "tmpfs", "-o", "mode=755", "tmpfs", f"{base}/run"],
            [MOUNT, "-t", "tmpfs", "-o", "mode=1777", "tmpfs", f"{base}/dev/shm"],
            [MKDIR, "-p", *(base + path for path in (*RUN_DIRS, *owned_run_dirs))],
            # numbers, not names: the host's chown would read the host's account files
            *([CHOWN, owner, base + path] for owner, path in owners),
            ["/bin/hostname", self.name],
        ]
        return steps

    def reinstall_system(self, old: Accounts) -> None:
        """A fresh system for a node that is off: its upper directory emptied (what the old
        system wrote outside its disks is gone, as with a reinstalled root filesystem) and the
        owners on its disks mapped by name from ``old``'s ids to this system's."""
        for directory in (UPPER, WORK):
            shutil.rmtree(self.root / directory, ignore_errors=True)
            (self.root / directory).mkdir()
        (self.root / UPPER).chmod(os.stat(self.system).st_mode & 0o7777)
        disks = [*STATE_DIRS, *(r for r in SERVICE_DIRS if (self.root / r).is_dir())]
        for relative in disks:
            self.accounts.take_over(self.root / relative, old)

    def _pivot(self, inside: NamespaceRunner, deadline: Deadline) -> None:
        """Make the node's merged system its root, then let go of the host's."""
        assert self.init_pid is not None
        merged = str(self.root / MERGED)
        # absolute paths: nsenter's --wd opens its directory before entering the namespace,
        # where the overlay is not mounted
        pivot = [NSENTER, "-t", str(self.init_pid), "-m", "--"]
        pivot += [PIVOT_ROOT, merged, f"{merged}/{OLD_ROOT}"]
        try:
            self.host_runner.run(pivot, timeout=max(deadline.remaining(), 1.0), check=True)
        except CommandError as err:
            raise LabError(f"node {self.name}: pivot_root into {merged}: {err}") from err
        # from here on every command is the release's own
        self._step(inside, [UMOUNT, "--lazy", f"/{OLD_ROOT}"], deadline)

    def _remove_old_port(self, switch: Switch, deadline: Deadline) -> None:
        """Remove the switch end of the veth of this node's last boot, if it is still there.

        The kernel destroys a dead node's network namespace, and with it the veth pair, in a work
        queue some time after the namespace's last process is gone; a boot right after a kill
        (a fencing reboot, a crash then a power-on) found it and failed with ``ip link add vnode1
        ... RTNETLINK answers: File exists``. Deleting one end of a veth deletes both, and the
        old node, being dead, has no use for its end.
        """
        show = [IP, "link", "show", "dev", self.port]

        def gone() -> bool:
            if not switch.runner.run(show, timeout=10).ok:
                return True
            switch.runner.run([IP, "link", "del", "dev", self.port], timeout=10)
            return not switch.runner.run(show, timeout=10).ok

        wait = Deadline(deadline.clock, min(OLD_PORT_GONE_S, deadline.remaining()))
        try:
            wait_until(gone, wait, f"the old {self.port} gone", interval=0.05)
        except ProcessError as err:
            raise LabError(
                f"node {self.name}: its last boot's link {self.port} is still on the switch "
                f"after {wait.seconds:.0f}s: {err}"
            ) from err

    def _step(self, inside: NamespaceRunner, step: list[str], deadline: Deadline) -> None:
        try:
            inside.run(step, timeout=max(deadline.remaining(), 1.0), check=True)
        except CommandError as err:
            raise LabError(f"node {self.name}: {' '.join(step)}: {err}") from err

    def sysctls(self) -> list[tuple[str, str]]:
        """The network settings the node's disk asks for (its ``sysctl.conf``), applied at boot."""
        try:
            return read_sysctls((self.root / SYSCTL_FILE).read_text())
        except FileNotFoundError:
            return []

    def set_sysctls(self, settings: Mapping[str, str]) -> None:
        """Add ``net.*`` settings to the node's ``sysctl.conf`` (they survive a power cycle, as
        /etc/sysctl.d does) and apply them now if the node runs."""
        if any(not key.startswith("net.") for key in settings):
            raise LabError(f"{self.name}: only net.* settings are the node's own: {settings}")
        current = dict(self.sysctls())
        current.update(settings)
        (self.root / SYSCTL_FILE).write_text("".join(f"{k} = {v}\n" for k, v in current.items()))
        if self.is_running:
            for key, value in settings.items():
                result = self.runner.run([SYSCTL, "-q", "-w", f"{key}={value}"], timeout=10)
                if not result.ok:
                    raise LabError(f"{self.name}: sysctl {key}: {result.output_line()}")

    def daemons(
        self, found: Optional[Mapping[str, set[str]]] = None, proc: str = "/proc"
    ) -> dict[str, str]:
        """'running' or 'stopped' for each of the node's cluster daemons (corosync, pacemakerd),
        from the processes of its PID namespace; ``found``: a :func:`daemons_by_pid_namespace`
        already read (one pass over /proc for every node). A Pacemaker that shut itself down on
        learning that the node was fenced shows pacemakerd stopped; a node in its POST, both."""
        namespace = (
            pid_namespace(self.init_pid, proc) if self.is_running and self.init_pid else None
        )
        if found is None:
            found = daemons_by_pid_namespace(proc)
        running = found.get(namespace, set()) if namespace else set()
        return {name: "running" if name in running else "stopped" for name in DAEMON_NAMES}

    def stop_cluster(self, deadline: Deadline, proc: str = "/proc") -> None:
        """Stop the cluster on this node cleanly, as ``pcs cluster stop`` does: pacemakerd
        first (the node's resources stop or move, its peers see it leave and fence nothing),
        then corosync; each by its pid in the node's PID namespace, SIGTERM. Raises LabError
        when one is still there at ``deadline`` (the node is left as it is)."""
        namespace = pid_namespace(self.init_pid, proc) if self.init_pid else None
        if not self.is_running or namespace is None:
            return
        for name in reversed(DAEMON_NAMES):

            def pids(name: str = name) -> list[int]:
                found = daemon_pids_by_pid_namespace(proc).get(namespace, {})
                return found.get(name, [])

            for pid in pids():
                self.processes.signal(pid, signal.SIGTERM)
            try:
                wait_until(lambda: not pids(), deadline, f"{name} stopped", interval=0.2)
            except ProcessError as err:
                raise LabError(f"node {self.name}: {name} did not stop: {err}") from err

    def status(self) -> Optional[crm_mon.ClusterStatus]:
        """The cluster as this node sees it, or None while it cannot tell."""
        if not self.is_running:
            return None
        try:
            return crm_mon.status(self.runner, timeout=10)
        except (CommandError, ValueError):
            return None

    def kill(self, deadline: Deadline) -> None:
        """Everything on the node dies at once, no goodbye: SIGKILL to its init, by pid."""
        # The init first, its helpers after: the nsenter parents of corosync and pacemakerd must
        # still be there to reap them, or the namespace waits on zombies that only the host's
        # PID 1 can reap (seconds, on machines whose PID 1 is slow to).
        if self.init_pid:
            end_processes(self.processes, [self.init_pid], deadline)
        end_processes(self.processes, self.helper_pids, deadline)
        self.init_pid = None
        self.helper_pids = []
