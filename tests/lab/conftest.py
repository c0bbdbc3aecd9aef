from __future__ import annotations

import time

import pytest
from stackha.clock import Deadline, SystemClock
from stackha.lab.lab import Lab


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


@pytest.fixture(scope="module")
def lab(installed, tmp_path_factory):
    """A 3-node lab for the tests of one module, removed afterwards whatever happened."""
    lab = Lab(str(tmp_path_factory.mktemp("lab") / "lab"))
    try:
        lab.up(nodes=3, timeout=120)
        yield lab
    finally:
        lab.down()


def cluster_view(lab, node):
    state = lab.load()
    for entry in state.nodes:
        if entry.name == node:
            return lab._node(state, entry).status()
    raise AssertionError(node)


def online_from(lab, node):
    status = cluster_view(lab, node)
    return set(status.online_nodes) if status and status.dc else set()


__all__ = ["Deadline", "SystemClock", "wait_for", "inside", "pcs", "cluster_view", "online_from"]
