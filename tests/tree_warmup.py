"""The root filesystem trees make check's tiers run on, built side by side before the tests.

Each tier builds the trees it needs on first use, one after the other, inside its tests: the
package tier a tree with the tools its checks run and a bare one for each release, the lab tier
its nodes' tree (``STACKHA_LAB_RELEASE``), the release labs theirs (``STACKHA_RELEASE_LABS``),
the Vagrant tier its box's (``STACKHA_VAGRANT_RELEASE``, ``STACKHA_VAGRANT_PROFILE``). A build
is mmdebstrap (downloads, then dpkg: about one core), 30-140 s each, so on a clean machine
building them three at a time first saves minutes of ``make check`` and changes nothing else:
the cache (:class:`stackha.lab.rootfs.TreeCache`) then holds them, and what it holds already is
not built again. The tests would build any tree missing all the same.

``PYTHONPATH=tests .venv/bin/python -m tree_warmup`` (make check runs it before the tests).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from stackha.lab import release
from stackha.lab.namespaces import LabError
from stackha.lab.rootfs import TreeCache
from stackha.runner import SubprocessRunner

# What the package tier's checks run in its tree, and nothing that must come in through
# stackha's Depends (pcs brings python3-lxml with it: the bare tree checks that one).
CHECK_PACKAGES = (
    "pacemaker",
    "pacemaker-cli-utils",
    "pcs",
    "resource-agents",  # ocf-tester, ocf-shellfuncs, metadata.rng, ra-api-1.dtd
    "haproxy",
    "libxml2-utils",  # xmllint, which ocf-tester needs
)
# Three at a time: two cores, and a build waits on the mirror and the disk part of its time.
SIDE_BY_SIDE = 3


def wanted(environ: dict[str, str]) -> list[tuple[str, Callable[[], Path]]]:
    """(what it is for, what builds it) of each tree the tiers will ask the cache for, through
    the calls the tiers make, the largest first (the lab nodes' take longest: started first,
    they end the warm-up sooner)."""
    runner = SubprocessRunner()
    trees: list[tuple[str, Callable[[], Path]]] = []
    lab_releases = environ.get("STACKHA_RELEASE_LABS", " ".join(sorted(release.RELEASES))).split()
    if environ.get("STACKHA_LAB_RELEASE"):
        lab_releases.append(environ["STACKHA_LAB_RELEASE"])
    for suite in sorted(set(lab_releases)):
        trees.append((f"lab nodes, {suite}", partial(release.node_tree, runner, suite, "stack")))
    vagrant = environ.get("STACKHA_VAGRANT_RELEASE", "trixie")
    profile = environ.get("STACKHA_VAGRANT_PROFILE", "cluster")
    trees.append(
        (
            f"Vagrant box, {vagrant} {profile}",
            partial(release.vm_tree, runner, vagrant, profile=profile),
        )
    )
    cache = TreeCache(runner)
    for suite in sorted(release.RELEASES):
        trees.append((f"package tier, {suite} tools", partial(cache.tree, CHECK_PACKAGES, suite)))
        trees.append((f"package tier, {suite} bare", partial(cache.tree, (), suite)))
    return trees


def warm(trees: Sequence[tuple[str, Callable[[], Path]]]) -> None:
    started = time.monotonic()

    def build(tree: tuple[str, Callable[[], Path]]) -> str:
        what, make = tree
        begun = time.monotonic()
        path = make()
        return f"  {what}: {path} ({time.monotonic() - begun:.0f} s)"

    with ThreadPoolExecutor(max_workers=SIDE_BY_SIDE) as pool:
        for line in pool.map(build, trees):
            print(line, flush=True)
    print(f"tree warm-up: {len(trees)} trees in {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    try:
        warm(wanted(dict(os.environ)))
    except LabError as err:
        print(f"tree warm-up: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
