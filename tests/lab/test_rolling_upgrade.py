"""A rolling upgrade of a cluster from Debian 12 to Debian 13 — Pacemaker 2.1 to 3.0, as
upstream supports from 2.0 on — in the lab: a 3-node lab of Debian 12 nodes (the ``cluster``
profile), the haproxy clone, a VIP and fencing through fence_stackha_ipmi on, then each node
in turn reinstalled with Debian 13 (``stackha lab reinstall``: the cluster stopped on it
cleanly, a fresh system of the new release, its disks kept) while the other two run the
services. Between the steps the cluster runs both releases at once. At the end every node
runs Pacemaker 3.0, and the CIB is upgraded to the newest schema.

What this does not cover (docs/upgrade.md): Galera and RabbitMQ across the two releases, whose
agents refuse to mix versions that cannot work together."""

from __future__ import annotations

import threading
import time

import pytest
from lab_helpers import inside, online_from, wait_for
from openstack_checks import vip_holder
from stackha.lab.lab import Lab
from test_release_lab import NODES, fence_through_ipmi, haproxy_and_vip_started
from test_release_lab import start_haproxy_and_vip as start_services

FROM, TO = "bookworm", "trixie"
VERSIONS = {FROM: "Pacemaker 2.1", TO: "Pacemaker 3.0"}


@pytest.fixture(scope="module")
def lab(stackha_deb, tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp("lab-upgrade") / "lab"))
    try:
        lab.up(
            nodes=len(NODES),
            timeout=600,
            deb=str(stackha_deb),
            release_name=FROM,
            profile="cluster",
        )
        start_services(lab)
        fence_through_ipmi(lab)
        yield lab
    finally:
        lab.down()


def pacemaker_of(lab, node):
    return inside(lab, node, "/usr/sbin/pacemakerd", "--version").stdout.splitlines()[0]


class VipWatch:
    """Asks the nodes that stay up, every half second, where the VIP runs: the longest time
    it ran nowhere."""

    def __init__(self, lab, observers):
        self.lab, self.observers = lab, observers
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        since = None
        while not self._stop.is_set():
            now = time.monotonic()
            if vip_holder(self.lab, observers=self.observers):
                since = None
            else:
                since = since or now
                self.longest = max(self.longest, now - since)
            self._stop.wait(0.5)

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.longest


def test_nodes_reinstalled_one_at_a_time_keep_the_cluster_and_the_vip(lab):
    history_before = inside(lab, "node1", "stonith_admin", "--history", "*").stdout
    for step, node in enumerate(("node3", "node2", "node1"), start=1):
        others = tuple(n for n in NODES if n != node)
        watch = VipWatch(lab, others)
        started = time.monotonic()
        lab.reinstall(node, TO)
        reinstalled = time.monotonic() - started
        watcher = others[0]
        wait_for(lambda: online_from(lab, watcher) == set(NODES), f"{node} back", 180)  # noqa: B023
        back = time.monotonic() - started
        wait_for(lambda: haproxy_and_vip_started(lab), "haproxy and the VIP", 120)
        gap = watch.stop()
        versions = {n: pacemaker_of(lab, n) for n in NODES}
        upgraded = {n for n, text in versions.items() if text.startswith(VERSIONS[TO])}
        assert upgraded == set(NODES[len(NODES) - step :]), versions
        assert all(
            text.startswith(VERSIONS[FROM]) for n, text in versions.items() if n not in upgraded
        ), versions
        print(
            f"\n{node} reinstalled with {TO} in {reinstalled:.1f}s, back in the cluster after "
            f"{back:.1f}s; the VIP ran nowhere for at most {gap:.1f}s; "
            f"{', '.join(f'{n}: {v}' for n, v in sorted(versions.items()))}"
        )
    # nobody was fenced: every node left the cluster cleanly
    assert inside(lab, "node1", "stonith_admin", "--history", "*").stdout == history_before


def test_the_upgraded_cluster_takes_the_newest_schema(lab):
    """Once every node runs 3.0: cibadmin --upgrade moves the CIB to pacemaker-4.0, which
    only 3.0 reads, and the cluster still runs the services."""
    assert all(pacemaker_of(lab, n).startswith(VERSIONS[TO]) for n in NODES)
    upgrade = inside(lab, "node1", "cibadmin", "--upgrade", "--force")
    assert upgrade.ok, upgrade.stderr
    cib = inside(lab, "node2", "cibadmin", "--query", "--scope", "configuration").stdout
    query = inside(lab, "node2", "cibadmin", "--query").stdout
    assert 'validate-with="pacemaker-4.0"' in query.split(">", 1)[0], query[:300]
    assert "<resources>" in cib or "<resources" in cib
    verify = inside(lab, "node3", "crm_verify", "--live-check")
    assert verify.ok, verify.stdout + verify.stderr
    wait_for(lambda: haproxy_and_vip_started(lab), "haproxy and the VIP after the upgrade", 60)
