"""The Vagrant lab's hypervisor: libvirtd started by hand in namespaces of the lab's own.

libvirtd runs in a named network namespace (``stackha-vagrant``) and, inside it, a private
mount namespace where the lab's state directory is bind-mounted over every directory libvirt
keeps configuration and state in, and a fresh tmpfs is mounted on ``/run``. Every bridge, VM
address, domain and network definition, storage pool, log, pid file and socket of this libvirt
exists only there; the host's ``/etc/libvirt``, ``/var/lib/libvirt`` and ``/run`` are never
written. Vagrant and virsh run inside the same namespaces through :meth:`Hypervisor.run`
(``nsenter`` into libvirtd's), with ``VAGRANT_HOME`` in the state directory too::

    hypervisor = Hypervisor(runner, processes, clock, Path("/var/lib/stackha/vagrant-host"))
    hypervisor.start()
    hypervisor.run(["vagrant", "up", "--provider=libvirt"], cwd="vagrant", timeout=1800)
    hypervisor.run(["vagrant", "destroy", "-f"], cwd="vagrant", timeout=600)
    hypervisor.stop()

No systemd, no libvirt socket activation: ``libvirtd`` is started in the foreground, detached
(its own session), its output in ``libvirtd.log`` of the state directory. ``stop`` ends every
process of the network namespace (libvirtd, its dnsmasq, the VMs' qemu) by pid, deletes the
namespace, and removes what ``start`` wrote.

Measured on a Debian 12 host (libvirt 9.0, vagrant 2.3.4, vagrant-libvirt 0.11.2, 2 cores,
no usable KVM): ``start`` in 8.6 s; one VM from stackha's bookworm box up and provisioned by
``vagrant up`` in 132 s under TCG; after ``vagrant destroy -f`` and ``stop``, no process,
namespace or state left, and the host's ``/etc/libvirt``, ``/var/lib/libvirt``,
``/var/log/libvirt`` and ``/run`` unchanged. (An earlier hand run that bound only
``qemu.conf`` and ``qemu/`` of ``/etc/libvirt`` let libvirt write ``nwfilter/*.xml``,
``secrets/`` and ``storage/default.xml`` into the host's: hence the whole private copy.)
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

from stackha.clock import Deadline
from stackha.lab.namespaces import (
    UNSHARE,
    LabError,
    NamespaceRunner,
    end_processes,
    missing_programs,
)
from stackha.lab.switch import IP
from stackha.process import KILL_RESERVE_S, ProcessError, is_alive, read_pidfile, wait_until
from stackha.runner import CommandError, Spawn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from stackha.clock import Clock
    from stackha.process import ProcessTable
    from stackha.runner import Result, Runner

DEFAULT_DIR = "/var/lib/stackha/vagrant-host"
NAMESPACE = "stackha-vagrant"
LIBVIRTD = "/usr/sbin/libvirtd"
VIRSH = "/usr/bin/virsh"
QEMU = "/usr/bin/qemu-system-x86_64"
SYSTEM_URI = "qemu:///system"
# vagrant-libvirt's default storage pool, where libvirt's Debian package puts images
POOL = "default"
POOL_PATH = "/var/lib/libvirt/images"
HOST_LIBVIRT_ETC = Path("/etc/libvirt")
# What the hypervisor runs, and the Debian packages that bring it.
REQUIRED: Mapping[str, str] = {
    LIBVIRTD: "libvirt-daemon-system libvirt-daemon-driver-qemu",
    VIRSH: "libvirt-clients",
    QEMU: "qemu-system-x86",
    IP: "iproute2",
    UNSHARE: "util-linux",
}

# The state directory's entries (all that start writes and stop removes) and, for the
# directories, where libvirtd sees them in its mount namespace.
ETC = "etc-libvirt"
LIB = "lib"
LOG = "log"
CACHE = "cache"
BIND_MOUNTS: Mapping[str, str] = {
    ETC: "/etc/libvirt",
    LIB: "/var/lib/libvirt",
    LOG: "/var/log/libvirt",
    CACHE: "/var/cache/libvirt",
}
# Mounted as a fresh tmpfs in libvirtd's mount namespace (its sockets, pid files and
# dnsmasq's leases go there): a state directory below one of these would be hidden by them.
TMPFS_RUN = "/run"
VAGRANT_HOME = "vagrant.d"
HOME = "home"
PID_FILE = "libvirtd.pid"
LOG_FILE = "libvirtd.log"
STATE_ENTRIES = (*BIND_MOUNTS, VAGRANT_HOME, HOME, PID_FILE, LOG_FILE)
# Of the host's /etc/libvirt, what the private copy starts empty instead: domain and network
# definitions (qemu/, as in the hand run), storage pools and secrets (libvirt's own to fill).
FRESH_ETC_DIRS: Mapping[str, int] = {"qemu": 0o755, "storage": 0o755, "secrets": 0o700}

# libvirtd as root with no systemd, no cgroup delegation and no virtlogd: no per-VM security
# labels (no AppArmor profile is loaded for it), VM output to files instead of virtlogd, no
# private /dev namespace per VM and no cgroups (neither can be set up here), and qemu as root
# (the state directory is root's).
QEMU_CONF = """\
# stackha: libvirtd started by hand in the Vagrant lab's namespaces (stackha.lab.vagrant_host)
security_driver = "none"
stdio_handler = "file"
namespaces = [ ]
cgroup_controllers = [ ]
user = "root"
group = "root"
"""

# Run by ``unshare -m`` in libvirtd's new mount namespace: bind-mount each SOURCE TARGET pair
# of its arguments up to "--", mount the private /run, then become the rest (libvirtd). The
# text is constant; every path comes in as an argument, never into the text.
MOUNT_THEN_EXEC = """\
set -eu
while [ "$1" != -- ]; do
    /bin/mount --bind "$1" "$2"
    shift 2
done
shift
/bin/mount -t tmpfs -o mode=0755 tmpfs /run
/bin/mkdir /run/libvirt
exec "$@"
"""
MOUNT_SCRIPT_NAME = "stackha-vagrant-mounts"  # its $0, what ps shows until the exec

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.5


def acceleration(cpuinfo: str = "/proc/cpuinfo", kvm: str = "/dev/kvm") -> str:
    """``kvm`` when ``kvm`` (/dev/kvm) opens read-write and ``cpuinfo`` has vmx or svm, else tcg.

    These machines have a paravirtual /dev/kvm (PVM) with neither flag, under which an
    ordinary Debian kernel hangs or crawls: /dev/kvm alone does not mean KVM can run a guest.
    """
    try:
        os.close(os.open(kvm, os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return "tcg"
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return "tcg"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and {"vmx", "svm"} & set(value.split()):
            return "kvm"
    return "tcg"


def last_line(path: Path) -> str:
    """The last non-empty line of the file ``path``, or a word saying there is none."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    lines = [line for line in lines if line]
    return lines[-1] if lines else "(empty log)"


class Hypervisor:
    """libvirtd in the network namespace ``namespace`` and a mount namespace of its own, its
    state in ``directory``. ``system`` and ``libvirt_etc``: where the programs and the host's
    libvirt configuration are looked for (tests hand in directories of their own)."""

    def __init__(
        self,
        runner: Runner,
        processes: ProcessTable,
        clock: Clock,
        directory: Path = Path(DEFAULT_DIR),
        namespace: str = NAMESPACE,
        system: Path = Path("/"),
        libvirt_etc: Path = HOST_LIBVIRT_ETC,
    ) -> None:
        self.runner = runner
        self.processes = processes
        self.clock = clock
        self.directory = directory
        self.namespace = namespace
        self.system = system
        self.libvirt_etc = libvirt_etc

    @property
    def pid_file(self) -> Path:
        return self.directory / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.directory / LOG_FILE

    # -- start --------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Lay out the state directory, make the namespace, start libvirtd in it and wait until
        ``virsh version`` answers. Raises LabError (one line) when a package is missing, the
        namespace already exists, or libvirtd does not answer within ``timeout`` seconds (then
        its processes and the namespace are gone, its log stays)."""
        missing = missing_programs(REQUIRED, self.system)
        if missing:
            raise LabError(f"missing Debian packages: {', '.join(missing)}; install them with apt")
        self._refuse_hidden_directory()
        if self._namespace_exists():
            raise LabError(
                f"network namespace {self.namespace} already exists (a hypervisor not stopped?):"
                f" Hypervisor.stop() ends its processes by pid and deletes it; by hand: kill each"
                f" pid of 'ip netns pids {self.namespace}', then 'ip netns del {self.namespace}'"
            )
        self._lay_out()
        deadline = Deadline(self.clock, timeout)
        self._ip("netns", "add", self.namespace)
        try:
            self._ip("-n", self.namespace, "link", "set", "lo", "up")
            spawned = self.runner.spawn(Spawn(self.libvirtd_argv(), output_path=str(self.log_file)))
            self._wait_answering(spawned, deadline)
            self._define_pool(deadline)
        except BaseException as failure:
            # whatever start made but the state directory, where libvirtd.log says why
            try:
                self._end_namespace(Deadline(self.clock, STOP_TIMEOUT_S))
            except LabError as cleanup:
                # the start's own reason first: it is what the operator has to fix
                raise LabError(f"{failure}; cleaning up after it: {cleanup}") from failure
            raise

    def libvirtd_argv(self) -> tuple[str, ...]:
        """libvirtd in the network namespace and a new private mount namespace, the state
        directory mounted over libvirt's own (:data:`MOUNT_THEN_EXEC`). ``ip netns exec``,
        ``unshare`` and the script each exec the next: the process started is libvirtd."""
        pairs = [
            path
            for entry, target in BIND_MOUNTS.items()
            for path in (str(self.directory / entry), target)
        ]
        return (
            IP,
            "netns",
            "exec",
            self.namespace,
            UNSHARE,
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            MOUNT_THEN_EXEC,
            MOUNT_SCRIPT_NAME,
            *pairs,
            "--",
            LIBVIRTD,
            "--pid-file",
            str(self.pid_file),
        )

    def _refuse_hidden_directory(self) -> None:
        """The state directory must stay visible in libvirtd's mount namespace."""
        if not self.directory.is_absolute():
            raise LabError(f"hypervisor directory {self.directory}: an absolute path, please")
        for target in (*BIND_MOUNTS.values(), TMPFS_RUN):
            mounted = Path(target)
            if self.directory == mounted or mounted in self.directory.parents:
                raise LabError(
                    f"hypervisor directory {self.directory} is under {target}, which libvirtd's "
                    f"mount namespace replaces: choose another (default {DEFAULT_DIR})"
                )

    def _lay_out(self) -> None:
        """The state directory: libvirt's private directories, qemu.conf."""
        self.directory.mkdir(parents=True, exist_ok=True)
        etc = self.directory / ETC
        if etc.exists():
            shutil.rmtree(etc)
        # A copy of the host's configuration (libvirtd.conf, nwfilter/ …) so libvirtd behaves
        # as it does on the host; what libvirt writes into it stays here.
        shutil.copytree(
            self.libvirt_etc,
            etc,
            symlinks=True,
            ignore=lambda where, names: (
                [n for n in names if n in FRESH_ETC_DIRS] if Path(where) == self.libvirt_etc else []
            ),
        )
        for name, mode in FRESH_ETC_DIRS.items():
            (etc / name).mkdir(mode=mode)
            (etc / name).chmod(mode)
        (etc / "qemu.conf").write_text(QEMU_CONF)
        for entry in (LIB, LOG, CACHE, VAGRANT_HOME, HOME):
            (self.directory / entry).mkdir(exist_ok=True)
        self.pid_file.unlink(missing_ok=True)

    def _wait_answering(self, spawned: int, deadline: Deadline) -> None:
        def answering() -> bool:
            if not is_alive(self.processes, spawned):
                raise LabError(
                    f"libvirtd exited at start: {last_line(self.log_file)} (log: {self.log_file})"
                )
            pid = self._libvirtd_pid()
            if pid is None:
                return False
            version = self._inside(pid).run(
                [VIRSH, "-c", SYSTEM_URI, "version"], timeout=max(min(deadline.remaining(), 10), 1)
            )
            return version.ok

        try:
            wait_until(answering, deadline, "libvirtd answering virsh version", interval=POLL_S)
        except ProcessError as err:
            raise LabError(
                f"libvirtd not answering 'virsh version' within {deadline.seconds:g}s: "
                f"{last_line(self.log_file)} (log: {self.log_file})"
            ) from err

    def _define_pool(self, deadline: Deadline) -> None:
        """vagrant-libvirt's storage pool, made here: each machine of a parallel ``vagrant up``
        otherwise defines it at once, and all but the first fail ("pool 'default' already
        exists", seen with three VMs)."""
        for step in (
            ["pool-define-as", POOL, "dir", "--target", POOL_PATH],
            ["pool-build", POOL],
            ["pool-start", POOL],
        ):
            result = self.run(
                [VIRSH, "-c", SYSTEM_URI, *step], timeout=max(min(deadline.remaining(), 30), 1)
            )
            if not result.ok:
                raise LabError(f"virsh {' '.join(step)}: {result.output_line()}")

    # -- run ----------------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[str] = None,
        check: bool = False,
    ) -> Result:
        """``argv`` in libvirtd's network and mount namespaces, in ``cwd``, with ``env`` over
        HOME and VAGRANT_HOME in the state directory (vagrant keeps its boxes and plugins'
        data there, not in root's home). Raises LabError when libvirtd is not running."""
        pid = self._libvirtd_pid()
        if pid is None:
            raise LabError(f"no hypervisor running from {self.directory}: start it first")
        environment = {
            "HOME": str(self.directory / HOME),
            "VAGRANT_HOME": str(self.directory / VAGRANT_HOME),
            **(env or {}),
        }
        return self._inside(pid, cwd).run(
            argv, timeout=timeout, stdin=stdin, env=environment, check=check
        )

    def spawn(self, spec: Spawn) -> int:
        """Start ``spec`` in libvirtd's network and mount namespaces (the Vagrant lab's BMCs:
        they bind addresses on its bridges and reach its socket); ``stop`` ends it with the
        rest of the namespace. Raises LabError when libvirtd is not running."""
        pid = self._libvirtd_pid()
        if pid is None:
            raise LabError(f"no hypervisor running from {self.directory}: start it first")
        return self._inside(pid).spawn(spec)

    def _inside(self, pid: int, cwd: Optional[str] = None) -> NamespaceRunner:
        return NamespaceRunner(self.runner, pid, namespaces="mn", wd=cwd)

    def namespace_taken(self) -> bool:
        """Whether the network namespace exists while this directory did not make it (another
        hypervisor's, which start refuses and stop leaves alone)."""
        return not (self.directory / ETC).is_dir() and self._namespace_exists()

    def running(self) -> bool:
        """Whether this hypervisor's libvirtd runs."""
        return self._libvirtd_pid() is not None

    def _libvirtd_pid(self) -> Optional[int]:
        """libvirtd's pid from its pid file, if that process is a live libvirtd (a pid file
        left by a libvirtd that is gone may name another process by now)."""
        pid = read_pidfile(str(self.pid_file))
        if pid is None or self.processes.name(pid) != "libvirtd":
            return None
        return pid if is_alive(self.processes, pid) else None

    # -- stop ---------------------------------------------------------------------------------

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """End every process in the namespace by pid (SIGTERM, then SIGKILL to those left at
        ``timeout`` less a reserve), delete the namespace, remove what start wrote into the
        state directory (and the directory, if nothing else is in it). Idempotent. Vagrant's
        VMs should be destroyed first (``vagrant destroy -f``): here they are only killed. A
        namespace this directory did not make is left alone. Raises LabError when a process
        survives SIGKILL or the namespace cannot be deleted."""
        # Only a namespace this directory's start made: start lays the directory out before it
        # makes the namespace, and refuses one that exists (another lab's: never ended here).
        if (self.directory / ETC).is_dir() and self._namespace_exists():
            self._end_namespace(Deadline(self.clock, timeout))
        for entry in STATE_ENTRIES:
            path = self.directory / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        try:
            self.directory.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # something else lives there: not ours to remove

    def _end_namespace(self, deadline: Deadline) -> None:
        listed = self._ip("netns", "pids", self.namespace).stdout.split()
        names = {int(word): self.processes.name(int(word)) for word in listed if word.isdigit()}
        pids = [pid for pid, name in names.items() if name]
        for pid in pids:
            # the name read with the list, checked again: a pid that ended meanwhile may
            # already be another process's
            if self.processes.name(pid) == names[pid]:
                self.processes.signal(pid, signal.SIGTERM)
        try:
            wait_until(
                lambda: not any(is_alive(self.processes, pid) for pid in pids),
                deadline.sub(KILL_RESERVE_S),
                f"the processes of {self.namespace} ended",
                interval=0.1,
            )
        except ProcessError:
            left = [pid for pid in pids if is_alive(self.processes, pid)]
            try:
                end_processes(
                    self.processes, left, deadline, tuple(str(names[pid]) for pid in left)
                )
            except ProcessError as err:
                raise LabError(f"namespace {self.namespace}: {err}") from err
        self._ip("netns", "del", self.namespace)

    # -- the namespace --------------------------------------------------------------------------

    def _namespace_exists(self) -> bool:
        # "NAME" or "NAME (id: N)" per line
        listed = self._ip("netns", "list").stdout.splitlines()
        return any(line.split()[:1] == [self.namespace] for line in listed)

    def _ip(self, *argv: str) -> Result:
        try:
            return self.runner.run([IP, *argv], timeout=10, check=True)
        except CommandError as err:
            raise LabError(f"ip {' '.join(argv)}: {err}") from err
