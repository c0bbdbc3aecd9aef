"""Debian root filesystems made by mmdebstrap, cached, and throw-away copies of them to run in.

A tree is made once per (suite, package list, mirror) and kept under a cache directory
(``/var/cache/stackha/rootfs/<suite>-<hash>``); while the list is unchanged every later caller
gets the same tree. It is built in a temporary directory beside its final place and renamed
there only once complete, so a half-made tree is never used; a failed build is removed.

The mirror is the machine's own: the Debian archive and security archive that
``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*.{list,sources}`` name for the host's
release, used for the tree's suite (a Debian 12 host's mirror builds a Debian 13 tree). No host
name is written in code.

:func:`scratch_root` runs commands in a copy of a tree that is thrown away afterwards: an overlay
(the tree read-only below, a temporary directory above) with ``/proc``, ``/sys`` (read-only),
``/dev``, and fresh tmpfs ``/run`` and ``/tmp``, all mounted inside a private mount namespace,
commands entered with ``nsenter`` and ``chroot``. The host's network namespace is shared, so a
simulator on 127.0.0.1 is reachable from inside.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stackha.clock import Deadline, SystemClock
from stackha.lab.namespaces import NSENTER, UNSHARE, LabError, end_processes, start_init
from stackha.process import ProcTable
from stackha.runner import CommandError, CommandTimedOut

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from contextlib import AbstractContextManager
    from typing import Callable, Optional

    from stackha.clock import Clock
    from stackha.process import ProcessTable
    from stackha.runner import Result, Runner

MMDEBSTRAP = "/usr/bin/mmdebstrap"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEFAULT_CACHE_DIR = "/var/cache/stackha/rootfs"
APT_DIR = "/etc/apt"
OS_RELEASE = "/etc/os-release"
MOUNT = "/bin/mount"
UMOUNT = "/bin/umount"
CHROOT = "/usr/sbin/chroot"
# Measured on this project's 2-core machines: the package tier's tree (~240 packages) 35-50 s,
# a trixie tree with the lab's ~620 packages about 260 s: a build past this is stuck, not slow.
BUILD_TIMEOUT_S = 3600.0
MOUNT_TIMEOUT_S = 30.0
# Output lines of a failed build that its error carries.
FAILURE_LINES = 5
# mmdebstrap deletes /usr/sbin/policy-rc.d at the end even when a hook wrote it; without it a
# package installed later in the tree would start its service (on the host's network).
POLICY_RC_D = "usr/sbin/policy-rc.d"
POLICY_RC_D_TEXT = "#!/bin/sh\n# stackha: no service starts in this tree by itself\nexit 101\n"
# Suites that have no -updates or -security companion.
ROLLING_SUITES = ("sid", "unstable", "experimental")
# Bump when the way a tree is made changes, so cached trees of the old way are not reused.
RECIPE = 1


@dataclass(frozen=True)
class AptSource:
    """One ``deb`` or ``deb-src`` entry of the apt configuration (one URI)."""

    kind: str
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: Optional[str] = None


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def parse_one_line(text: str) -> list[AptSource]:
    """The entries of a one-line-style ``sources.list`` text (``deb [opts] URI SUITE COMP...``).

    Lines that are not ``deb``/``deb-src`` entries are ignored, as apt would refuse them anyway.
    """
    sources = []
    for raw in text.splitlines():
        line = _strip_comment(raw)
        words = line.split()
        if not words or words[0] not in ("deb", "deb-src"):
            continue
        kind, rest = words[0], line[len(words[0]) :].strip()
        options: dict[str, str] = {}
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            for option in inside.split():
                key, _, value = option.partition("=")
                options[key.lower()] = value
        fields = rest.split()
        if len(fields) < 2:
            continue
        sources.append(
            AptSource(
                kind, fields[0], (fields[1],), tuple(fields[2:]), options.get("signed-by") or None
            )
        )
    return sources


def _deb822_paragraphs(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    key: Optional[str] = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif raw[0] in " \t":
            # A continuation line: an armored key block under Signed-By, for one.
            if key is not None:
                fields[key] += "\n" + raw.strip()
        elif ":" in raw:
            name, _, value = raw.partition(":")
            key = name.strip().lower()
            fields[key] = value.strip()


def parse_deb822(text: str) -> list[AptSource]:
    """The entries of a deb822-style ``.sources`` text, one per type and URI.

    A paragraph with ``Enabled: no`` is skipped. An inline key under ``Signed-By`` is not a
    path: it is kept as given.
    """
    sources = []
    for fields in _deb822_paragraphs(text):
        if fields.get("enabled", "yes").lower() in ("no", "false", "0"):
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "").split())
        signed_by = fields.get("signed-by") or None
        for kind in fields.get("types", "").split():
            if kind not in ("deb", "deb-src"):
                continue
            for uri in fields.get("uris", "").split():
                sources.append(AptSource(kind, uri, suites, components, signed_by))
    return sources


def read_apt_sources(apt_dir: str = APT_DIR) -> list[AptSource]:
    """Every entry of the machine's apt configuration, in the order apt reads the files:
    ``sources.list``, then ``sources.list.d/*.list`` and ``*.sources`` by name (files of any
    other ending are ignored, as apt ignores them)."""
    directory = Path(apt_dir)
    sources: list[AptSource] = []
    main = directory / "sources.list"
    if main.is_file():
        sources += parse_one_line(main.read_text(encoding="utf-8", errors="replace"))
    parts = directory / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if not path.is_file():
                continue
            if path.name.endswith(".list"):
                sources += parse_one_line(path.read_text(encoding="utf-8", errors="replace"))
            elif path.name.endswith(".sources"):
                sources += parse_deb822(path.read_text(encoding="utf-8", errors="replace"))
    return sources


def host_codename(os_release: str = OS_RELEASE) -> str:
    """The host's release codename (``VERSION_CODENAME`` of os-release: ``bookworm``).

    Raises LabError when os-release does not say it.
    """
    try:
        text = Path(os_release).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise LabError(f"cannot read the host's release from {os_release}: {err}") from err
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "VERSION_CODENAME" and value.strip().strip("\"'"):
            return value.strip().strip("\"'")
    raise LabError(f"{os_release} names no VERSION_CODENAME: give the suite explicitly")


@dataclass(frozen=True)
class Mirror:
    """Where Debian comes from, as the machine's apt configuration says."""

    archive: str
    components: tuple[str, ...] = ("main",)
    has_updates: bool = False
    security: Optional[str] = None

    def source_lines(self, suite: str) -> list[str]:
        """The one-line apt sources of ``suite`` (with its -updates and -security when the
        host uses them for its own release)."""
        components = " ".join(self.components)
        lines = [f"deb {self.archive} {suite} {components}"]
        if suite not in ROLLING_SUITES:
            if self.has_updates:
                lines.append(f"deb {self.archive} {suite}-updates {components}")
            if self.security:
                lines.append(f"deb {self.security} {suite}-security {components}")
        return lines


def _is_debian_signed(source: AptSource) -> bool:
    # A third-party repository that names the host's codename (Docker's, PostgreSQL's) is signed
    # by its own key; Debian's archive by the archive keyring or, in old setups, by apt's
    # global keyring (no Signed-By).
    return source.signed_by is None or "debian-archive" in source.signed_by


def find_mirror(sources: Sequence[AptSource], codename: str) -> Mirror:
    """The Debian archive and security archive of the host's release ``codename`` among
    ``sources``: the first ``deb`` entry of the release with the ``main`` component.

    Raises LabError when the configuration has no such entry.
    """
    debs = [s for s in sources if s.kind == "deb" and "main" in s.components]
    debs = [s for s in debs if not s.uri.startswith("cdrom:") and _is_debian_signed(s)]
    archive = next((s for s in debs if codename in s.suites), None)
    if archive is None:
        raise LabError(
            f"no Debian archive for {codename} (a 'deb' entry with 'main') in the apt "
            f"configuration ({APT_DIR}/sources.list, {APT_DIR}/sources.list.d/): "
            "the root filesystem's mirror is read from there"
        )
    uri = archive.uri.rstrip("/")
    has_updates = any(s.uri.rstrip("/") == uri and f"{codename}-updates" in s.suites for s in debs)
    # "codename/updates" is how releases up to Debian 10 named their security suite.
    security = next(
        (s for s in debs if {f"{codename}-security", f"{codename}/updates"} & set(s.suites)),
        None,
    )
    # Only main: everything the trees hold is there, and the host's contrib or non-free would
    # change nothing but the cache's hash.
    return Mirror(
        uri,
        ("main",),
        has_updates,
        security.uri.rstrip("/") if security else None,
    )


def machine_mirror(apt_dir: str = APT_DIR, os_release: str = OS_RELEASE) -> Mirror:
    """The mirror of this machine's apt configuration (see :func:`find_mirror`)."""
    return find_mirror(read_apt_sources(apt_dir), host_codename(os_release))


def tree_name(suite: str, packages: Iterable[str], mirror: Mirror) -> str:
    """The cache name of a tree: the suite and a hash of everything that makes the tree."""
    recipe = {
        "recipe": RECIPE,
        "suite": suite,
        "packages": sorted(set(packages)),
        "sources": mirror.source_lines(suite),
        "keyring": KEYRING,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"{suite}-{digest[:16]}"


def mmdebstrap_argv(
    suite: str, packages: Sequence[str], mirror: Mirror, target: str, program: str = MMDEBSTRAP
) -> list[str]:
    """The command that builds the tree into the empty directory ``target``.

    It runs in a mount and PID namespace of its own that dies with it (``--kill-child``): the
    ``/proc``, ``/sys`` and ``/dev`` mounts mmdebstrap makes in the tree cannot outlive a build
    that was killed, and neither can its apt or dpkg.
    """
    argv = [
        UNSHARE,
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        program,
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        '--aptopt=APT::Install-Recommends "false"',
        f"--keyring={KEYRING}",
    ]
    if packages:
        argv.append("--include=" + ",".join(sorted(set(packages))))
    return [*argv, suite, target, *mirror.source_lines(suite)]


def mounts_under(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or below ``path`` in this mount namespace."""
    base = os.path.realpath(path).rstrip("/")
    found = []
    with open(mountinfo, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 5:
                continue
            # mountinfo escapes space, tab, newline and backslash as octal.
            point = fields[4].encode().decode("unicode_escape")
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return found


def remove_tree(path: str) -> None:
    """Remove a directory this module made, refusing when anything is mounted below it (a
    recursive delete would go through a bind mount of /dev into the host's own files)."""
    if not os.path.lexists(path):
        return
    mounted = mounts_under(path)
    if mounted:
        raise LabError(f"not removing {path}: {mounted[0]} is still mounted there")
    shutil.rmtree(path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on the file ``path`` (made if absent) for the block: one builder of a
    tree or a box at a time, another waits; a killed builder's lock goes with its process."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class TreeCache:
    """Debian trees built by mmdebstrap, kept under ``cache_dir`` (see the module's text)."""

    def __init__(
        self,
        runner: Runner,
        cache_dir: str = DEFAULT_CACHE_DIR,
        mmdebstrap: str = MMDEBSTRAP,
        log: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.runner = runner
        self.cache_dir = Path(cache_dir)
        self.mmdebstrap = mmdebstrap
        self._log = log

    def log(self, line: str) -> None:
        if self._log:
            self._log(line)

    def path(self, suite: str, packages: Iterable[str], mirror: Mirror) -> Path:
        """Where the tree of these would be (whether or not it is built)."""
        return self.cache_dir / tree_name(suite, packages, mirror)

    def tree(
        self,
        packages: Sequence[str] = (),
        suite: Optional[str] = None,
        mirror: Optional[Mirror] = None,
        timeout: float = BUILD_TIMEOUT_S,
    ) -> Path:
        """The tree of ``suite`` (default: the host's release) with ``packages`` and what they
        depend on (no recommends), from ``mirror`` (default: the machine's); built now unless
        the cache holds it.

        Raises LabError naming what failed: mmdebstrap missing, no mirror in the apt
        configuration, the build (with the last lines of its output).
        """
        suite = suite or host_codename()
        mirror = mirror or machine_mirror()
        target = self.path(suite, packages, mirror)
        if target.is_dir():
            return target
        if not os.access(self.mmdebstrap, os.X_OK):
            raise LabError(
                f"{self.mmdebstrap} not found: install the mmdebstrap package to build "
                f"{suite} root filesystems"
            )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._locked(target.name):
            # Another process may have built it while this one waited for the lock.
            if target.is_dir():
                return target
            self._build(suite, packages, mirror, target, timeout)
        return target

    def _locked(self, name: str) -> AbstractContextManager[None]:
        return locked(self.cache_dir / f".{name}.lock")

    def _build(
        self, suite: str, packages: Sequence[str], mirror: Mirror, target: Path, timeout: float
    ) -> None:
        # One name per tree: under the lock no other build of it runs, so what is there was
        # left by a build that was killed mid-way.
        building = self.cache_dir / f".{target.name}.build"
        remove_tree(str(building))
        # The tree's / must let its services' users through, whatever the umask.
        building.mkdir(mode=0o755)
        building.chmod(0o755)
        try:
            self.log(f"building the {suite} tree {target} ({len(set(packages))} packages) ...")
            argv = mmdebstrap_argv(suite, packages, mirror, str(building), self.mmdebstrap)
            try:
                result = self.runner.run(argv, timeout=timeout)
            except CommandTimedOut as err:
                raise LabError(f"mmdebstrap building the {suite} tree: {err}") from err
            except CommandError as err:
                raise LabError(f"mmdebstrap building the {suite} tree: {err}") from err
            if not result.ok:
                raise LabError(
                    f"mmdebstrap failed (exit {result.returncode}) building the {suite} tree: "
                    + " | ".join(last_lines(result, FAILURE_LINES))
                )
            policy = building / POLICY_RC_D
            policy.parent.mkdir(parents=True, exist_ok=True)
            policy.write_text(POLICY_RC_D_TEXT)
            policy.chmod(0o755)
            (self.cache_dir / f"{target.name}.json").write_text(
                json.dumps(
                    {
                        "suite": suite,
                        "packages": sorted(set(packages)),
                        "sources": mirror.source_lines(suite),
                    },
                    indent=2,
                )
                + "\n"
            )
            building.rename(target)
        except BaseException:
            remove_tree(str(building))
            raise
        self.log(f"built the {suite} tree {target}")


def last_lines(result: Result, count: int) -> list[str]:
    """The last ``count`` non-empty lines of a command's output (stderr after stdout)."""
    lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines()]
    return [line for line in lines if line][-count:]


class ScratchRoot:
    """A throw-away copy of a tree, mounted in a private mount namespace (see
    :func:`scratch_root`). ``path`` is where the host sees it (through ``/proc/PID/root`` of the
    namespace's init): files are read and written there from the host."""

    def __init__(self, runner: Runner, init_pid: int, merged: str) -> None:
        self.runner = runner
        self.init_pid = init_pid
        self.merged = merged

    @property
    def path(self) -> Path:
        return Path(f"/proc/{self.init_pid}/root{self.merged}")

    def wrap(self, argv: Sequence[str]) -> list[str]:
        return [NSENTER, "-t", str(self.init_pid), "-m", "-p", "--", CHROOT, self.merged, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        """``argv`` run inside the copy, as root, with the runner's clean environment."""
        return self.runner.run(self.wrap(argv), timeout=timeout, stdin=stdin, env=env, check=check)


def system_mounts(lower: str, upper: str, work: str, merged: str) -> list[list[str]]:
    """The mount commands that give a system of its own at ``merged``: an overlay of ``lower``
    (one directory, or several joined by ``:``, topmost first) under ``upper``, its own proc,
    a read-only sysfs and the host's ``/dev``. Scratch roots and the lab's nodes of a release
    (:class:`stackha.lab.node.Node`) start with these and add their own tmpfs mounts."""
    return [
        [
            MOUNT,
            "-t",
            "overlay",
            "-o",
            f"lowerdir={lower},upperdir={upper},workdir={work}",
            "overlay",
            merged,
        ],
        # A proc of the namespace's own PID namespace: ps inside sees only the copy's processes.
        [MOUNT, "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{merged}/proc"],
        [MOUNT, "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{merged}/sys"],
        [MOUNT, "--rbind", "/dev", f"{merged}/dev"],
    ]


def overlay_mounts(tree: str, upper: str, work: str, merged: str) -> list[list[str]]:
    """The mount commands that make a scratch root of ``tree`` at ``merged``, in order."""
    return [
        *system_mounts(tree, upper, work, merged),
        # libqb's IPC files live in /dev/shm: the copy's own, not the host's.
        [MOUNT, "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{merged}/dev/shm"],
        [MOUNT, "-t", "tmpfs", "-o", "mode=755,nosuid,nodev", "tmpfs", f"{merged}/run"],
        [MOUNT, "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{merged}/tmp"],
        # The host's resolver as it is now, not as it was when the tree was built.
        [MOUNT, "--bind", "-o", "ro", "/etc/resolv.conf", f"{merged}/etc/resolv.conf"],
    ]


@contextmanager
def scratch_root(
    runner: Runner,
    tree: Path,
    scratch_dir: Optional[str] = None,
    processes: Optional[ProcessTable] = None,
    clock: Optional[Clock] = None,
    upper_dir: Optional[Path] = None,
) -> Iterator[ScratchRoot]:
    """A throw-away copy of ``tree`` to run commands in, gone (every mount, process and file
    of it) when the block ends, however it ends.

    The copy is an overlay: ``tree`` stays as it was, what the block changes goes to a
    temporary directory under ``scratch_dir`` (default: the system's temporary directory). Its
    mounts are made in a private mount namespace held by ``tini`` in a PID namespace of its
    own: every command run in the copy is in that PID namespace, so ending the init by pid
    ends whatever the block started there (a daemon a package's script left running), and the
    mounts go with the namespace. Raises LabError when a mount fails.

    ``upper_dir``: keep what the block changes: the overlay's upper (and work) directories are
    made there (``upper_dir/upper``, ``upper_dir/work``) and stay when the block ends, a layer
    to stack on ``tree`` later (:func:`stackha.lab.release.install_layer`).
    """
    processes = processes or ProcTable()
    clock = clock or SystemClock()
    holder, init = start_init(
        runner,
        processes,
        ["--mount", "--pid", "--fork", "--propagation", "private"],
        Deadline(clock, MOUNT_TIMEOUT_S),
        os.devnull,
    )
    # Named for the init, which is alive and ours: no other scratch root has the name. One
    # left by a scratch root whose process was killed (its mounts gone with its namespace) is
    # removed first.
    base = Path(scratch_dir or tempfile.gettempdir()) / f"stackha-scratch-{init}"
    kept = upper_dir or base
    upper, work, merged = kept / "upper", kept / "work", base / "merged"
    try:
        remove_tree(str(base))
        base.mkdir(mode=0o700)
        for directory in (upper, work, merged):
            directory.mkdir()
        # the tree's / is 0755 whatever the umask: an upper directory's own mode shows through
        upper.chmod(os.stat(tree).st_mode & 0o7777)
        for argv in overlay_mounts(str(tree), str(upper), str(work), str(merged)):
            result = runner.run(
                [NSENTER, "-t", str(init), "-m", "-p", "--", *argv], timeout=MOUNT_TIMEOUT_S
            )
            if not result.ok:
                raise LabError(f"scratch root of {tree}: {' '.join(argv)}: {result.output_line()}")
        yield ScratchRoot(runner, init, str(merged))
    finally:
        try:
            # Unmounted explicitly first; the namespace's end below removes whatever a process
            # still held busy here.
            runner.run(
                [NSENTER, "-t", str(init), "-m", "--", UMOUNT, "--recursive", str(merged)],
                timeout=MOUNT_TIMEOUT_S,
            )
        finally:
            end_processes(processes, [holder, init], Deadline(clock, MOUNT_TIMEOUT_S))
            remove_tree(str(base))
