"""A lab whose nodes run a Debian release from a root filesystem of their own.

Each release in ``$STACKHA_RELEASE_LABS`` (default: every release the lab supports, Debian 12
and 13, whatever the host runs) gets a 3-node lab of its ``cluster`` profile: the release's
Pacemaker, Corosync, pcs, HAProxy and resource agents, and the stackha packages built from this
tree in the lab's layer. On it: the nodes really run that release (its Pacemaker, its python3,
the packaged stackha), files carry the tree's own ids, the haproxy clone with the virtual IP
runs our agent under that Pacemaker, and a crash of the VIP's node ends in fencing through
fence_stackha_ipmi, the VIP on a survivor and the node back. A lab of a release with a newer
one after it (Debian 12) then goes through a rolling upgrade: each node reinstalled with the
newer release in turn while the others run the services, fencing on, and the CIB raised to
the newer schema at the end. Then ``down`` leaves nothing.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from lab_helpers import inside, online_from, pcs, wait_for
from openstack_checks import started_on, status_from, vip_holder
from stackha.lab import openstack, release
from stackha.lab.accounts import Accounts
from stackha.lab.lab import Lab
from stackha.lab.rootfs import DEFAULT_CACHE_DIR, mounts_under
from stackha.ocf.daemon import ProcTable, is_alive

RELEASES = os.environ.get("STACKHA_RELEASE_LABS", " ".join(sorted(release.RELEASES))).split()
# What each release's nodes must report (Debian's own versions of the release).
EXPECTED = {
    "bookworm": {
        "debian": "12.",
        "pacemaker": "Pacemaker 2.1",
        "python": "Python 3.11",
        "schema": "pacemaker-3.",
    },
    "trixie": {
        "debian": "13.",
        "pacemaker": "Pacemaker 3.0",
        "python": "Python 3.13",
        "schema": "pacemaker-4.0",
    },
}
NODES = ("node1", "node2", "node3")
PASSWORD_FILE = "/etc/stackha/bmc.password"
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
PROCESSES = ProcTable()


@pytest.fixture(scope="module", params=RELEASES)
def lab(request, stackha_deb, tmp_path_factory):
    lab = Lab(str(tmp_path_factory.mktemp(f"lab-{request.param}") / "lab"))
    started = time.monotonic()
    try:
        lab.up(
            nodes=len(NODES),
            timeout=600,
            deb=str(stackha_deb),
            release_name=request.param,
            profile="cluster",
        )
        print(f"\n{request.param} lab up (tree built or cached): {time.monotonic() - started:.1f}s")
        yield lab
    finally:
        lab.down()


def write_inside(lab, node, path, text, mode="600"):
    """A file written inside a node (its own disk), its text through stdin."""
    runner = lab.node_runner(node)
    assert runner.run(["/bin/mkdir", "-p", os.path.dirname(path)], timeout=10).ok
    assert runner.run(["/usr/bin/tee", path], stdin=text, timeout=10).ok
    assert runner.run(["/bin/chmod", mode, path], timeout=10).ok


def test_the_nodes_run_the_release_and_the_packages_built_here(lab, stackha_deb):
    state = lab.load()
    want = EXPECTED[state.release]
    for node in NODES:
        version = inside(lab, node, "/bin/cat", "/etc/debian_version").stdout
        assert version.startswith(want["debian"]), (node, version)
        assert inside(lab, node, "/usr/sbin/pacemakerd", "--version").stdout.startswith(
            want["pacemaker"]
        )
        assert inside(lab, node, "/usr/bin/python3", "--version").stdout.startswith(want["python"])
        packaged = inside(lab, node, "/usr/bin/stackha", "--version").stdout.split()
        assert packaged == ["stackha", state.package_version], packaged
        # the agents are the package's, run by the release's python3
        head = inside(lab, node, "/usr/bin/head", "-1", "/usr/lib/ocf/resource.d/stackha/haproxy")
        assert head.stdout.strip() == "#!/usr/bin/python3 -IS"
        dpkg = inside(lab, node, "/usr/bin/dpkg-query", "-W", "stackha", "stackha-lab")
        assert dpkg.stdout.split() == [
            "stackha",
            state.package_version,
            "stackha-lab",
            state.package_version,
        ]
        # nothing of the host's root is left in the node
        assert "/.stackha-old-root" not in inside(lab, node, "/bin/cat", "/proc/mounts").stdout
    assert stackha_deb.name.startswith(f"stackha_{state.package_version}_")


def test_pcs_and_the_fencer_read_our_agents_on_the_releases_pacemaker(lab):
    describe = pcs(lab, "resource", "describe", "ocf:stackha:galera").stdout
    assert "promotable" in describe.lower() or "promote" in describe.lower(), describe
    for agent in ("fence_stackha_ipmi", "fence_stackha_pdu"):
        metadata = inside(lab, "node1", "stonith_admin", "--metadata", "--agent", agent)
        assert metadata.ok and f'name="{agent}"' in metadata.stdout, metadata.stderr


def test_files_the_host_wrote_carry_the_trees_ids(lab):
    """hacluster is another number in the tree than on the host: the CIB and /run/crm are the
    tree's hacluster's, as the node's own ls shows."""
    accounts = Accounts(lab.load().tree)
    hacluster = accounts.ids("hacluster", "haclient")
    for path in ("/var/lib/pacemaker/cib", "/run/crm"):
        shown = inside(lab, "node2", "/usr/bin/stat", "-c", "%u:%g %U", path).stdout.split()
        assert shown == [f"{hacluster[0]}:{hacluster[1]}", "hacluster"], (path, shown)


def start_haproxy_and_vip(lab):
    """The haproxy clone (ocf:stackha:haproxy, the lab's configuration on every node's disk)
    and the VIP on it, fencing off for now; returns when both run."""
    state = lab.load()
    prefix = int(state.subnet.split("/")[1])
    vip = openstack.vip_of(state.subnet)
    config = openstack.haproxy_config(vip, [(n.name, n.address) for n in state.nodes])
    for node in NODES:
        write_inside(lab, node, HAPROXY_CONFIG, config, mode="644")
        lab.node(node).set_sysctls({"net.ipv4.ip_nonlocal_bind": "1"})
    pcs(lab, "property", "set", "stonith-enabled=false")
    for argv in openstack.haproxy_commands(HAPROXY_CONFIG) + openstack.vip_commands(vip, prefix):
        pcs(lab, *argv)
    wait_for(lambda: haproxy_and_vip_started(lab), "haproxy on every node and the VIP", 90)


def haproxy_and_vip_started(lab, observers=NODES):
    status = status_from(lab, observers)
    return (
        status is not None
        and started_on(status, "haproxy") == set(NODES)
        and len(started_on(status, "vip")) == 1
    )


def fence_through_ipmi(lab):
    """Fencing on, one fence_stackha_ipmi device per node (its password in a root-only file
    of each node, read by password_script); returns when the three devices run."""
    inventory = lab.inventory()
    password = inventory["nodes"][0]["bmc"]["password"]
    for node in NODES:
        write_inside(lab, node, PASSWORD_FILE, password + "\n")
    for node in inventory["nodes"]:
        name = node["name"]
        pcs(
            lab,
            "stonith",
            "create",
            f"ipmi-{name}",
            "fence_stackha_ipmi",
            f"ip={node['bmc']['address']}",
            "username=admin",
            f"password_script=/bin/cat {PASSWORD_FILE}",
            f"pcmk_host_list={name}",
        )
        pcs(lab, "constraint", "location", f"ipmi-{name}", "avoids", name)
    pcs(lab, "property", "set", "stonith-enabled=true")
    wait_for(
        lambda: inside(lab, "node1", "pcs", "stonith", "status").stdout.count("Started") == 3,
        "fence devices started",
    )


def test_haproxy_and_the_vip_run_on_the_releases_pacemaker(lab):
    start_haproxy_and_vip(lab)
    deep = inside(
        lab,
        "node1",
        "/usr/bin/env",
        "OCF_ROOT=/usr/lib/ocf",
        f"OCF_RESKEY_config={HAPROXY_CONFIG}",
        "OCF_RESKEY_CRM_meta_timeout=20000",
        "OCF_CHECK_LEVEL=10",
        "/usr/lib/ocf/resource.d/stackha/haproxy",
        "monitor",
    )
    assert deep.returncode == 0, deep.stdout + deep.stderr


def test_a_crash_of_the_vips_node_ends_in_fencing_through_our_agent(lab):
    """Fencing on through fence_stackha_ipmi: the node holding the VIP crashes, a survivor
    fences it through its BMC, the VIP moves, and the node boots and rejoins."""
    fence_through_ipmi(lab)
    victim = wait_for(lambda: vip_holder(lab), "the VIP placed")
    watcher = next(n for n in NODES if n != victim)
    crashed = time.monotonic()
    lab.crash(victim)

    def survivor():
        where = vip_holder(lab, observers=(watcher,))
        return where if where != victim else None

    moved = wait_for(survivor, "the VIP on a survivor", timeout=120)
    fenced_at = time.monotonic() - crashed
    wait_for(lambda: online_from(lab, watcher) == set(NODES), f"{victim} back", timeout=180)
    back_at = time.monotonic() - crashed
    history = inside(lab, watcher, "stonith_admin", "--history", victim).stdout
    assert f"reboot of {victim} successful" in history, history
    print(
        f"\n{lab.load().release}: {victim} crashed; VIP on {moved} after {fenced_at:.1f}s, "
        f"{victim} back in the cluster after {back_at:.1f}s"
    )


def next_release(name):
    """The release after ``name`` among the lab's (oldest first), or None."""
    names = list(release.RELEASES)
    index = names.index(name) + 1
    return names[index] if index < len(names) else None


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


def test_a_rolling_upgrade_to_the_next_release_keeps_the_cluster_and_the_vip(lab):
    """Each node in turn reinstalled with the next release (stackha lab reinstall: the
    cluster stopped on it cleanly, a fresh system of that release, its disks kept) while the
    other two run haproxy and the VIP, fencing on: between the steps the cluster runs both
    releases' Pacemaker (2.1 and 3.0: upstream supports rolling upgrades from 2.0 on)."""
    old = lab.load().release
    new = next_release(old)
    if new is None:
        pytest.skip(f"{old} is the newest release the lab knows: nothing to upgrade to")
    history_before = inside(lab, "node1", "stonith_admin", "--history", "*").stdout
    for step, node in enumerate(reversed(NODES), start=1):
        others = tuple(n for n in NODES if n != node)
        watch = VipWatch(lab, others)
        started = time.monotonic()
        lab.reinstall(node, new)
        reinstalled = time.monotonic() - started
        watcher = others[0]
        wait_for(lambda: online_from(lab, watcher) == set(NODES), f"{node} back", 180)  # noqa: B023
        back = time.monotonic() - started
        wait_for(lambda: haproxy_and_vip_started(lab), "haproxy and the VIP", 120)
        gap = watch.stop()
        versions = {n: pacemaker_of(lab, n) for n in NODES}
        upgraded = {n for n, v in versions.items() if v.startswith(EXPECTED[new]["pacemaker"])}
        assert upgraded == set(NODES[len(NODES) - step :]), versions
        assert all(
            text.startswith(EXPECTED[old]["pacemaker"])
            for n, text in versions.items()
            if n not in upgraded
        ), versions
        print(
            f"\n{node} reinstalled with {new} in {reinstalled:.1f}s, back in the cluster after "
            f"{back:.1f}s; the VIP ran nowhere for at most {gap:.1f}s; "
            f"{', '.join(f'{n}: {v}' for n, v in sorted(versions.items()))}"
        )
    # nobody was fenced: every node left the cluster cleanly
    assert inside(lab, "node1", "stonith_admin", "--history", "*").stdout == history_before


def test_after_the_upgrade_the_cib_takes_the_newest_schema(lab):
    """Once every node runs the next release: cibadmin --upgrade moves the CIB to that
    release's newest schema (pacemaker-4.0, which only 3.0 reads), crm_verify has nothing to
    say, and the services run on."""
    new = next_release(lab.load().release)
    if new is None:
        pytest.skip("no upgrade: the lab runs the newest release")
    assert all(pacemaker_of(lab, n).startswith(EXPECTED[new]["pacemaker"]) for n in NODES)
    upgrade = inside(lab, "node1", "cibadmin", "--upgrade", "--force")
    assert upgrade.ok, upgrade.stderr
    head = inside(lab, "node2", "cibadmin", "--query").stdout.split(">", 1)[0]
    assert f'validate-with="{EXPECTED[new]["schema"]}' in head, head
    verify = inside(lab, "node3", "crm_verify", "--live-check")
    assert verify.ok, verify.stdout + verify.stderr
    wait_for(lambda: haproxy_and_vip_started(lab), "haproxy and the VIP after the upgrade", 60)


def test_down_leaves_no_process_mount_or_file(lab):
    state = lab.load()
    pids = [p for n in state.nodes for p in [n.init_pid, *n.helper_pids, n.bmc_pid] if p]
    layer = state.layer
    lab.down()
    assert not any(is_alive(PROCESSES, pid) for pid in pids)
    assert mounts_under(str(lab.directory)) == []
    assert not os.path.exists(layer) and not lab.directory.exists()
    # the tree stays cached for the next lab of this release
    assert os.path.isdir(state.tree) and state.tree.startswith(DEFAULT_CACHE_DIR)
