"""stackha on the lab's nodes: the Debian package, as an operator installs it.

The namespace lab's nodes see the host's files, so the package goes onto the host with apt
(``apt-get install ./stackha_<version>_all.deb``: apt takes python3-lxml, python3-pyghmi and
python3-pexpect from the distribution) and every node runs what it installed: the agents in
/usr/lib/ocf/resource.d/stackha and /usr/sbin with ``#!/usr/bin/python3 -IS`` and the system's
libraries, ``/usr/bin/stackha``. The package is the one given (``stackha lab up --deb FILE``)
or built from this checkout's working tree (``scripts/build-deb``). ``stackha install``'s
development copy is removed first (by its manifest: exactly the files it wrote), since the
package's files take its place. ``down`` purges the package if ``up`` installed it, and leaves
alone a package that was there before.
"""

from __future__ import annotations

import re
from pathlib import Path

from stackha.install import PACKAGED_OCF_ROOT, InstallError, read_manifest, uninstall
from stackha.lab.namespaces import LabError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Optional

    from stackha.runner import Runner

PACKAGE = "stackha"
# What the nodes run once the package is in.
STACKHA = "/usr/bin/stackha"
GALERA_CHECK = "/usr/bin/stackha-galera-check"
CHECKOUT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = CHECKOUT / "scripts" / "build-deb"
DEB_NAME = re.compile(r"^stackha_([^_]+)_all\.deb$")
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
APT_TIMEOUT_S = 600.0  # apt may fetch python3-pyghmi & co. from the mirror
BUILD_TIMEOUT_S = 600.0


def installed_version(runner: Runner) -> Optional[str]:
    """The version of the Debian package stackha installed here, or None."""
    result = runner.run(
        ["/usr/bin/dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", PACKAGE], timeout=30
    )
    status, _, version = result.stdout.strip().partition(" ")
    return version if result.ok and status == "installed" else None


def deb_version(deb: Path) -> str:
    """The version in a stackha package's file name (``stackha_<version>_all.deb``)."""
    match = DEB_NAME.match(deb.name)
    if not match:
        raise LabError(f"{deb}: not a stackha package (stackha_VERSION_all.deb)")
    return match.group(1)


def build(runner: Runner, directory: Path) -> Path:
    """Build the packages from this checkout's working tree into ``directory``; the path of
    the stackha package."""
    if not BUILD_SCRIPT.exists():
        raise LabError("no checkout to build the stackha package from: give one with --deb FILE")
    result = runner.run([str(BUILD_SCRIPT), str(directory)], timeout=BUILD_TIMEOUT_S)
    if not result.ok:
        raise LabError(f"building the stackha package failed: {result.output_line()}")
    debs = [Path(line) for line in result.stdout.split() if DEB_NAME.match(Path(line).name)]
    if len(debs) != 1:
        raise LabError(f"scripts/build-deb built no stackha package: {result.output_line()}")
    return debs[0]


def install(
    runner: Runner, deb: Path, progress: Callable[[str], None] = lambda message: None
) -> bool:
    """Install ``deb`` with apt; True when the package was not installed before (so the
    lab's ``down`` removes it again)."""
    deb = deb.resolve()
    version = deb_version(deb)
    if not deb.is_file():
        raise LabError(f"{deb}: no such package file")
    try:
        if read_manifest(PACKAGED_OCF_ROOT):
            removal = uninstall(PACKAGED_OCF_ROOT)
            progress(
                f"removed the development install (stackha install): {len(removal.removed)} "
                "files; the package's agents take their place"
            )
    except InstallError as err:
        raise LabError(str(err)) from None
    before = installed_version(runner)
    argv = ["/usr/bin/apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q"]
    argv += ["--no-install-recommends", "--allow-downgrades", "--reinstall", str(deb)]
    result = runner.run(argv, env=APT_ENV, timeout=APT_TIMEOUT_S)
    if not result.ok:
        raise LabError(f"apt could not install {deb.name}: {result.output_line()}")
    now = installed_version(runner)
    if now != version:
        raise LabError(f"installed {deb.name}, but dpkg reports stackha {now}")
    progress(f"package: {deb.name} installed with apt (the nodes run it)")
    return before is None


def remove(runner: Runner) -> None:
    """Purge the package (what ``install`` put there, dependencies left to apt autoremove)."""
    argv = ["/usr/bin/apt-get", "-o", "DPkg::Lock::Timeout=600", "purge", "-y", "-q", PACKAGE]
    result = runner.run(argv, env=APT_ENV, timeout=APT_TIMEOUT_S)
    if not result.ok:
        raise LabError(f"apt could not remove the stackha package: {result.output_line()}")
