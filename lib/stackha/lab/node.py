"""One lab node: Linux namespaces that give real Corosync and Pacemaker a machine of their own.

A node is a PID namespace whose init is ``tini`` (a bare ``sleep`` would leave zombies that still
pass ``kill -0``), with its own network, mount and UTS namespaces. Inside the mount namespace the
directories the cluster daemons keep state in are bind-mounted from private copies under the
node's root directory, and ``/run`` and ``/dev/shm`` are fresh tmpfs: libqb IPC uses ``/dev/shm``
files (per mount namespace) and abstract sockets (per network namespace), so both must be private
for two nodes' daemons not to meet. Commands run inside with ``nsenter``.

Everything a node made is ended by killing its init by pid: the kernel then kills every process
in the PID namespace, and the namespaces go with their last process.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

from stackha.clock import Deadline
from stackha.ocf.daemon import ProcTable, is_alive, wait_until
from stackha.pacemaker import crm_mon
from stackha.runner import CommandError, Result, Spawn

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.clock import Clock
    from stackha.ocf.daemon import ProcessTable
    from stackha.runner import Runner


# Host directory (relative to the node root) → where it is mounted inside the node.
STATE_DIRS: Mapping[str, str] = {
    "etc/corosync": "/etc/corosync",
    "var/lib/corosync": "/var/lib/corosync",
    "var/lib/pacemaker": "/var/lib/pacemaker",
    "var/log": "/var/log",
}
PACEMAKER_SUBDIRS = ("cib", "pengine", "blackbox", "cores")
NSENTER = "/usr/bin/nsenter"


class LabError(Exception):
    """A lab step failed; the message says which and why."""


class NamespaceRunner:
    """A :class:`~stackha.runner.Runner` whose commands run inside a node."""

    def __init__(self, runner: Runner, init_pid: int) -> None:
        self.runner = runner
        self.init_pid = init_pid

    def _wrap(self, argv: Sequence[str]) -> list[str]:
        return [NSENTER, "-t", str(self.init_pid), "-n", "-m", "-u", "-p", "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        return self.runner.run(self._wrap(argv), timeout=timeout, stdin=stdin, env=env, check=check)

    def spawn(self, spec: Spawn) -> int:
        return self.runner.spawn(
            Spawn(
                argv=tuple(self._wrap(spec.argv)),
                user=spec.user,
                group=spec.group,
                cwd=spec.cwd,
                output_path=spec.output_path,
                env=spec.env,
            )
        )


class Node:
    """A cluster node made of namespaces, with its state under ``root``."""

    def __init__(
        self,
        runner: Runner,
        clock: Clock,
        name: str,
        root: Path,
        hosts: str,
        processes: Optional[ProcessTable] = None,
    ) -> None:
        self.host_runner = runner
        self.clock = clock
        self.name = name
        self.root = root
        self.hosts = hosts
        self.processes = processes or ProcTable()
        self.init_pid: Optional[int] = None
        self._spawned: list[int] = []

    @property
    def runner(self) -> NamespaceRunner:
        if self.init_pid is None:
            raise LabError(f"node {self.name} is not up")
        return NamespaceRunner(self.host_runner, self.init_pid)

    def prepare(self, corosync_conf: str, authkey: bytes) -> None:
        """Lay out the node's private state directories (on the host side)."""
        for relative in STATE_DIRS:
            (self.root / relative).mkdir(parents=True, exist_ok=True)
        pacemaker = self.root / "var/lib/pacemaker"
        for sub in PACEMAKER_SUBDIRS:
            (pacemaker / sub).mkdir(exist_ok=True)
        for path in [pacemaker, *pacemaker.iterdir()]:
            shutil.chown(path, "hacluster", "haclient")
        (self.root / "var/log/cluster").mkdir(exist_ok=True)
        (self.root / "var/log/pacemaker").mkdir(exist_ok=True)
        shutil.chown(self.root / "var/log/pacemaker", "hacluster", "haclient")
        (self.root / "etc/corosync/corosync.conf").write_text(corosync_conf)
        key = self.root / "etc/corosync/authkey"
        key.write_bytes(authkey)
        os.chmod(key, 0o400)
        (self.root / "hosts").write_text(self.hosts)

    def boot(self, deadline: Deadline) -> None:
        """Create the namespaces with tini as init, and mount the node's private state."""
        unshare = self.host_runner.spawn(
            Spawn(
                argv=(
                    "/usr/bin/unshare",
                    "--net",
                    "--mount",
                    "--uts",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "--",
                    "/usr/bin/tini",
                    "-s",
                    "--",
                    "/bin/sleep",
                    "infinity",
                ),
                output_path=str(self.root / "init.log"),
            )
        )
        self._spawned.append(unshare)
        children: list[int] = []

        def init_started() -> bool:
            children[:] = self.processes.children(unshare)
            return bool(children)

        wait_until(init_started, deadline, f"init of node {self.name}", interval=0.01)
        self.init_pid = children[0]
        inside = self.runner
        steps: list[list[str]] = []
        for relative, target in STATE_DIRS.items():
            steps.append(["/bin/mount", "--bind", str(self.root / relative), target])
        steps += [
            ["/bin/mount", "--bind", str(self.root / "hosts"), "/etc/hosts"],
            ["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"],
            ["/bin/mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/dev/shm"],
            ["/bin/mkdir", "-p", "/run/crm", "/run/haproxy"],
            ["/bin/chown", "hacluster:haclient", "/run/crm"],
            ["/bin/hostname", self.name],
            ["/sbin/ip", "link", "set", "lo", "up"],
        ]
        for step in steps:
            try:
                inside.run(step, timeout=max(deadline.remaining(), 1.0), check=True)
            except CommandError as err:
                raise LabError(f"node {self.name}: {' '.join(step)}: {err}") from err

    def start_cluster(self) -> None:
        """Start corosync, then pacemakerd, in the foreground inside the node."""
        log_dir = self.root / "var/log"
        self._spawned.append(
            self.runner.spawn(
                Spawn(("/usr/sbin/corosync", "-f"), output_path=str(log_dir / "corosync.out"))
            )
        )
        self._spawned.append(
            self.runner.spawn(
                Spawn(("/usr/sbin/pacemakerd", "-f"), output_path=str(log_dir / "pacemakerd.out"))
            )
        )

    def status(self) -> Optional[crm_mon.ClusterStatus]:
        """The cluster as this node sees it, or None while it cannot tell."""
        try:
            return crm_mon.status(self.runner, timeout=10)
        except (CommandError, ValueError):
            return None

    def destroy(self, deadline: Deadline) -> None:
        """Kill the node's init (the kernel ends every process inside) and our helper processes."""
        targets = ([self.init_pid] if self.init_pid else []) + self._spawned
        for pid in targets:
            self.processes.signal(pid, signal.SIGKILL)
        wait_until(
            lambda: not any(is_alive(self.processes, pid) for pid in targets),
            deadline,
            f"node {self.name} gone",
            interval=0.02,
        )
        self.init_pid = None
        self._spawned.clear()
