"""Galera in the lab, seen from outside the agent: SQL on each node, a writer that records every
commit the server acknowledged, the faults of the soak. Roles and health come from
stackha.lab.galera, which the benchmark uses too."""

from __future__ import annotations

import itertools
import threading
import time

from lab_helpers import (
    fault_crash_all_nodes,
    fault_crash_node,
    fault_partition,
    fault_power_cycle_lab,
    pcs,
    settle,
    wait_for,
)
from stackha.lab import galera as lab_galera
from stackha.lab.galera import MARIADB, NODES, healthy, kill_mariadbd, roles, wsrep_status

RECOVERY_TIMEOUT = 180.0


def sql(lab, node, statement, timeout=20):
    """Run SQL on ``node`` over its socket as root; the result (check ``.ok``)."""
    return lab.node_runner(node).run(
        [MARIADB, "--batch", "--skip-column-names", "--execute", statement], timeout=timeout
    )


# After a partition heals, a cut-off node's Galera may rejoin the component by itself within
# seconds, while Pacemaker learns only once the membership has merged that the node's monitor
# failed meanwhile (non-Primary), and then stops and starts it: a cluster seen healthy in
# between is about to lose a server. Two Promoted monitor intervals (10 s) cover the merge.
STEADY_AFTER_HEAL = 20.0


def galera_state(lab):
    """Each node's role and wsrep status in one line, for a failure's message."""
    seen = roles(lab) or {}
    parts = []
    for node in NODES:
        status = wsrep_status(lab, node)
        wsrep = "/".join(
            status.get(k, "-")
            for k in ("wsrep_cluster_status", "wsrep_local_state_comment", "wsrep_cluster_size")
        )
        parts.append(f"{node} {seen.get(node)} {wsrep if status else 'no answer'}")
    return "; ".join(parts)


def wait_all_promoted(lab, what, timeout=RECOVERY_TIMEOUT, steady=0.0):
    """Seconds until every node is Promoted and Synced with nothing left for Pacemaker to do:
    a state seen while a recovery is in flight, or before Pacemaker learns of a failure
    (``steady`` seconds after it is first seen), is one that is about to end."""
    started = time.monotonic()
    wanted = f"every node Promoted and Synced ({what})"

    def left():
        return max(timeout - (time.monotonic() - started), 60.0)

    try:
        wait_for(lambda: healthy(lab), wanted, timeout)
        time.sleep(steady)
        settle(lab, timeout=round(left()))
        wait_for(lambda: healthy(lab), f"{wanted}, once Pacemaker settled", left())
    except AssertionError as error:
        raise AssertionError(f"{error}; last seen: {galera_state(lab)}") from None
    return time.monotonic() - started


class Writer:
    """Commits one row after another through whichever node accepts it, and records each id
    the server acknowledged (the client exited 0: autocommit, the commit returned)."""

    ids = itertools.count(1)  # shared by every writer of a test session: ids never repeat

    def __init__(self, lab, nodes=NODES):
        self.lab = lab
        self.nodes = nodes
        self.acknowledged: list[int] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self):
        turn = 0
        while not self._stop.is_set():
            node = self.nodes[turn % len(self.nodes)]
            row = next(self.ids)
            try:
                result = sql(
                    self.lab, node, f"INSERT INTO soak.acked (id, via) VALUES ({row}, '{node}')"
                )
                ok = result.ok
            except Exception:  # noqa: BLE001 - a node gone, a timeout: not acknowledged
                ok = False
            if ok:
                self.acknowledged.append(row)
            else:
                self.failures += 1
                turn += 1  # try the next node
                self._stop.wait(0.2)

    def wait_for_commits(self, count, timeout=60):
        target = len(self.acknowledged) + count
        wait_for(lambda: len(self.acknowledged) >= target, f"{count} more commits", timeout)


def deploy(lab):
    """MariaDB Galera provisioned on every node and run by Pacemaker as the operator would
    create it, fencing off; returns the seconds from create to all Promoted and Synced."""
    address = lab_galera.provision(lab)
    pcs(lab, "property", "set", "stonith-enabled=false")
    pcs(
        lab,
        "resource",
        "create",
        "galera",
        "ocf:stackha:galera",
        f"wsrep_cluster_address={address}",
        "promotable",
        "promoted-max=3",
        "notify=true",
    )
    seconds = wait_all_promoted(lab, "cold start")
    prepare_soak_table(lab)
    return seconds


def prepare_soak_table(lab):
    result = sql(
        lab,
        "node1",
        "CREATE DATABASE IF NOT EXISTS soak; "
        "CREATE TABLE IF NOT EXISTS soak.acked (id BIGINT PRIMARY KEY, via VARCHAR(16))",
    )
    assert result.ok, result.stderr


def missing_rows(lab, node, acknowledged):
    """Acknowledged ids that ``node`` does not have."""
    result = sql(lab, node, "SELECT id FROM soak.acked", timeout=60)
    assert result.ok, f"{node}: {result.stderr}"
    present = {int(line) for line in result.stdout.split()}
    return sorted(set(acknowledged) - present)


def assert_no_lost_writes(lab, writer, nodes=NODES):
    acknowledged = list(writer.acknowledged)
    assert acknowledged, "the writer committed nothing"
    for node in nodes:
        missing = missing_rows(lab, node, acknowledged)
        assert not missing, f"{node} lacks {len(missing)} acknowledged rows, e.g. {missing[:5]}"


# -- faults, for the soak: each one leaves the cluster to recover by itself -----------------


def fault_kill_one(lab, rng):
    node = rng.choice(NODES)
    kill_mariadbd(lab, node)
    return f"kill -9 of {node}'s mariadbd"


def fault_kill_all(lab, rng):
    kill_mariadbd(lab, *NODES)
    return "kill -9 of every mariadbd"


FAULTS = (
    fault_kill_one,
    fault_kill_all,
    fault_crash_node,
    fault_crash_all_nodes,
    fault_power_cycle_lab,
    fault_partition,
)
