"""Lab nodes of a named Debian release, whatever release the host runs.

A node of a release runs from a root filesystem of that release: a tree built by mmdebstrap
from the distribution's packages (:mod:`stackha.lab.rootfs`, cached while its package list is
unchanged), with the stackha packages on top. The package list of each release is one file,
``releases/<release>.list``, in sections: ``[cluster]`` is what every node needs (Pacemaker,
Corosync, pcs, the fence and resource agents, HAProxy, the stackha package's dependencies),
``[stack]`` the services the control plane adds (MariaDB Galera, RabbitMQ, uwsgi, memcached),
and with it the packages of every OpenStack API service (their records' ``lab.packages`` in
:mod:`stackha.services.api_catalog`). A lab asks for a profile: ``cluster`` builds a tree of
the first section alone (a fencing lab needs no OpenStack), ``stack`` of both. The Vagrant
lab's box reads the same file: its tree (:func:`vm_tree`) is a profile's (``stack`` unless
asked) with the ``[vm]`` section on top, what a machine of its own boots with (a kernel,
systemd as init); the namespace lab's nodes, which boot
no kernel, never have it, and their trees keep their cache names.

Every node of a lab boots an overlay of three layers (see :class:`stackha.lab.node.Node`):

- the release's tree, read-only and shared by every lab of that release;
- the lab's own layer: the stackha and stackha-lab packages installed by dpkg into an overlay
  of the tree once per lab (:func:`install_layer`), so every node runs the packages as an
  operator installs them, with the release's own python3, lxml, pyghmi and pexpect;
- the node's own upper directory: whatever the node writes outside its state directories.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stackha.lab.namespaces import LabError
from stackha.lab.package import deb_version
from stackha.lab.rootfs import DEFAULT_CACHE_DIR, TreeCache, scratch_root
from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Callable, Optional

    from stackha.clock import Clock
    from stackha.process import ProcessTable
    from stackha.runner import Runner

# The releases a lab's nodes can run, and what an operator calls them.
RELEASES = {"bookworm": "Debian 12", "trixie": "Debian 13"}
# The sections of a package list, in order: a profile's tree has its section and those before.
PROFILES = ("cluster", "stack")
STACK_SECTION = "stack"
# The section only a Vagrant box's tree has, after every profile's.
VM_SECTION = "vm"
LISTS_DIR = Path(__file__).with_name("releases")
DPKG = "/usr/bin/dpkg"
LAB_PACKAGE = "stackha-lab"
# dpkg of two small packages and dh-python's byte-compiling: seconds; a minute is stuck.
LAYER_TIMEOUT_S = 300.0


def check_release(release: str) -> str:
    if release not in RELEASES:
        known = ", ".join(f"{name} ({title})" for name, title in RELEASES.items())
        raise LabError(f"unknown release {release!r}: a lab's nodes run one of {known}")
    return release


def parse_list(text: str, source: str) -> dict[str, list[str]]:
    """The sections of a package list: ``[name]`` lines open a section, every other line that is
    not blank or a ``#`` comment is one package of it."""
    sections: dict[str, list[str]] = {}
    current: Optional[list[str]] = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if name in sections:
                raise LabError(f"{source}:{number}: section [{name}] a second time")
            current = sections[name] = []
        elif current is None:
            raise LabError(f"{source}:{number}: package {line!r} before any [section]")
        elif len(line.split()) != 1:
            raise LabError(f"{source}:{number}: one package per line, not {line!r}")
        else:
            current.append(line)
    return sections


def _section_packages(release: str, wanted: Sequence[str], lists_dir: Path) -> list[str]:
    """The packages of the sections ``wanted`` of ``release``'s list, in that order."""
    check_release(release)
    path = lists_dir / f"{release}.list"
    try:
        sections = parse_list(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise LabError(f"{path}: no package list for {release}") from None
    missing = [name for name in wanted if not sections.get(name)]
    if missing:
        raise LabError(f"{path}: no packages in section [{missing[0]}]")
    listed = []
    for name in wanted:
        listed += sections[name]
        if name == STACK_SECTION:
            listed += api_catalog.packages()
    # a package two sections name (rsync: Galera's and the box's) once, where it comes first
    return list(dict.fromkeys(listed))


def packages(release: str, profile: str = "stack", lists_dir: Path = LISTS_DIR) -> list[str]:
    """The packages of ``release``'s tree for ``profile`` (see the module's text)."""
    check_release(release)
    if profile not in PROFILES:
        raise LabError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    return _section_packages(release, PROFILES[: PROFILES.index(profile) + 1], lists_dir)


def vm_packages(release: str, profile: str = "stack", lists_dir: Path = LISTS_DIR) -> list[str]:
    """The packages of ``release``'s Vagrant box: ``profile``'s (as a node's) and ``[vm]``'s."""
    check_release(release)
    if profile not in PROFILES:
        raise LabError(f"unknown profile {profile!r}: one of {', '.join(PROFILES)}")
    return _section_packages(
        release, (*PROFILES[: PROFILES.index(profile) + 1], VM_SECTION), lists_dir
    )


def node_tree(
    runner: Runner,
    release: str,
    profile: str = "stack",
    cache_dir: str = DEFAULT_CACHE_DIR,
    log: Optional[Callable[[str], None]] = None,
) -> Path:
    """The tree of ``release`` for ``profile``, built now unless the cache holds it."""
    wanted = packages(release, profile)
    return TreeCache(runner, cache_dir, log=log).tree(wanted, suite=release)


def vm_tree(
    runner: Runner,
    release: str,
    cache_dir: str = DEFAULT_CACHE_DIR,
    log: Optional[Callable[[str], None]] = None,
    profile: str = "stack",
) -> Path:
    """The tree of ``release``'s Vagrant box for ``profile`` (:func:`vm_packages`), built now
    unless cached.

    A tree of its own in the same cache: its package list differs, so its name does.
    """
    wanted = vm_packages(release, profile)
    return TreeCache(runner, cache_dir, log=log).tree(wanted, suite=release)


def lab_package(deb: Path) -> Path:
    """The stackha-lab package built with ``deb`` (beside it, of the same version): the nodes
    of a release start their cluster daemons through its ``stackha.lab.post``."""
    companion = deb.with_name(f"{LAB_PACKAGE}_{deb_version(deb)}_all.deb")
    if not companion.is_file():
        raise LabError(
            f"nodes of a release need {companion.name} beside {deb} (scripts/build-deb builds both)"
        )
    return companion


def install_layer(
    runner: Runner,
    tree: Path,
    layer: Path,
    debs: Sequence[Path],
    processes: Optional[ProcessTable] = None,
    clock: Optional[Clock] = None,
) -> None:
    """Install ``debs`` with dpkg into an overlay of ``tree`` whose upper directory is
    ``layer``: afterwards ``layer`` holds exactly what the packages added (their files,
    dpkg's database, the byte-code their postinst compiled), for nodes to stack on the tree.

    dpkg, not apt: the tree has the packages' dependencies already (the list's ``[cluster]``
    section), and a node needs no network. A dependency missing from the tree is an error
    naming it. On failure ``layer`` is removed.
    """
    if layer.exists():
        raise LabError(f"{layer} exists already: not a fresh layer")
    layer.mkdir(mode=0o755, parents=True)
    try:
        with scratch_root(runner, tree, processes=processes, clock=clock, upper_dir=layer) as root:
            inside = []
            for deb in debs:
                # the scratch root's /tmp is its own tmpfs: nothing copied there reaches the layer
                shutil.copyfile(deb, root.path / "tmp" / deb.name)
                inside.append(f"/tmp/{deb.name}")
            result = root.run([DPKG, "--install", *inside], timeout=LAYER_TIMEOUT_S)
            if not result.ok:
                raise LabError(
                    f"dpkg could not install {', '.join(d.name for d in debs)} in the "
                    f"{tree.name} tree: {result.output_line()}"
                )
    except BaseException:
        shutil.rmtree(layer, ignore_errors=True)
        raise


def layer_upper(layer: Path) -> Path:
    """Where a layer made by :func:`install_layer` keeps its files (an overlay's upper)."""
    return layer / "upper"


def remove_layer(layer: Path) -> None:
    if os.path.lexists(layer):
        shutil.rmtree(layer)
