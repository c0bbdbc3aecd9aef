"""Helpers of the lab tests: polling, commands inside nodes, the cluster as a node sees it."""

from __future__ import annotations

import os
import time

# The Debian release the lab tier's nodes run (stackha.lab.release): "bookworm" or "trixie"
# (make check runs the tier on nodes of trixie and part of it on bookworm), or empty for the
# host's own files, the fast path of a development machine.
LAB_RELEASE = os.environ.get("STACKHA_LAB_RELEASE") or None


def lab_up(lab, deb, **options):
    """``lab.up`` with the package ``deb``, on nodes of the tier's release (LAB_RELEASE)."""
    if LAB_RELEASE:
        options.update(release_name=LAB_RELEASE, profile="stack")
        # the first lab of a run may build the release's tree first (~2 min)
        options["timeout"] = max(options.get("timeout", 300.0), 600.0)
    lab.up(deb=str(deb), **options)


def wait_for(predicate, what, timeout=60.0, interval=0.5):
    """Poll until ``predicate()`` is true; fail the test naming ``what`` at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


def inside(lab, node, *argv, timeout=60):
    return lab.node_runner(node).run(list(argv), timeout=timeout)


def pcs(lab, *argv, node="node1"):
    result = inside(lab, node, "pcs", *argv)
    assert result.ok, f"pcs {' '.join(argv)}: {result.stdout}{result.stderr}"
    return result


def settle(lab, timeout=120, node="node1"):
    """Wait until the cluster has no action in flight (the DC idle, nothing to do), as
    ``node`` sees it. A state seen before that may be one a pending action is about to end."""
    result = inside(
        lab, node, "crm_resource", "--wait", f"--timeout={timeout}s", timeout=timeout + 10
    )
    assert result.ok, f"crm_resource --wait: {result.stdout}{result.stderr}"


def cluster_view(lab, node):
    """The cluster as ``node`` sees it (None while it cannot tell)."""
    return lab.node(node).status()


def online_from(lab, node):
    status = cluster_view(lab, node)
    return set(status.online_nodes) if status and status.dc else set()


def node_pids(lab, name):
    """The host pids of a node's init and its helpers, as the lab recorded them."""
    entry = next(n for n in lab.load().nodes if n.name == name)
    return [p for p in [entry.init_pid, *entry.helper_pids] if p]


# -- faults any workload's soak uses: each returns what it did -------------------------------

LAB_NODES = ("node1", "node2", "node3")


def fault_crash_node(lab, rng, nodes=LAB_NODES):
    node = rng.choice(nodes)
    lab.crash(node)
    time.sleep(rng.uniform(2, 8))
    lab.set_power(node, "on")
    return f"{node} crashed and powered on again"


def fault_crash_all_nodes(lab, rng, nodes=LAB_NODES):
    for node in nodes:
        lab.crash(node)
    time.sleep(rng.uniform(1, 4))
    for node in nodes:
        lab.set_power(node, "on")
    return "every node crashed at once and was powered on again"


def fault_power_cycle_node(lab, rng, nodes=LAB_NODES):
    node = rng.choice(nodes)
    lab.set_power(node, "off")
    time.sleep(rng.uniform(1, 4))
    lab.set_power(node, "on")
    return f"{node} powered off and on"


def fault_power_cycle_lab(lab, rng, nodes=LAB_NODES):
    for node in nodes:
        lab.set_power(node, "off")
    time.sleep(rng.uniform(1, 4))
    for node in nodes:
        lab.set_power(node, "on")
    return "the whole lab powered off and on"


def fault_partition(lab, rng, nodes=LAB_NODES, seconds=(10, 20)):
    """One node cut off for a while; ``seconds`` long enough for the workload to notice."""
    node = rng.choice(nodes)
    lab.partition([node])
    time.sleep(rng.uniform(*seconds))
    lab.heal()
    return f"{node} partitioned away and back"
