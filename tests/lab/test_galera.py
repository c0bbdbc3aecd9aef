"""ocf:stackha:galera under Pacemaker, on a 3-node lab with real MariaDB Galera.

Each fault runs while a writer commits rows; afterwards every acknowledged row must be on every
node, and the cluster must be back to all Promoted by itself. Fencing is off here (stonith
lives in the fencing tests); a crashed node is simply lost and powered on again. Last, the
soak: random faults in rounds on the same Galera.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from galera_checks import (
    FAULTS,
    STEADY_AFTER_HEAL,
    Writer,
    assert_no_lost_writes,
    deploy,
    sql,
    wait_all_promoted,
)
from lab_helpers import fault_partition, inside, pcs, wait_for
from stackha.lab.galera import NODES, healthy, kill_mariadbd, roles, wsrep_status

SOAK_ROUNDS = int(os.environ.get("STACKHA_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("STACKHA_SOAK_SEED") or time.time_ns() % 1_000_000)


@pytest.fixture(scope="module")
def galera(lab):
    print(f"cold start to all Promoted: {deploy(lab):.1f}s")
    return lab


def attributes(lab, node="node1"):
    """crm_mon -A's node attributes section, as text."""
    result = inside(lab, node, "crm_mon", "-1", "-A")
    assert result.ok, result.stderr
    return result.stdout.split("Node Attributes:", 1)[-1]


def test_cold_start_forms_one_primary_component_of_all_nodes(galera):
    assert healthy(galera)
    uuids = {wsrep_status(galera, node)["wsrep_cluster_state_uuid"] for node in NODES}
    assert len(uuids) == 1
    shown = attributes(galera)
    for node in NODES:
        assert f"* Node: {node}" in shown
    assert shown.count("galera-primary") == 3, shown


def test_a_node_kept_unpromoted_reports_its_position_and_joins_when_allowed(galera):
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
        pcs(galera, "resource", "ban", "galera-clone", "node3", "--promoted")
        wait_for(
            lambda: (roles(galera) or {}).get("node3") == ("Unpromoted", False),
            "node3 Unpromoted",
            120,
        )
        shown = attributes(galera)
        node3 = shown.split("* Node: node3", 1)[1]
        position = next(line for line in node3.splitlines() if "galera-position" in line)
        uuid = wsrep_status(galera, "node1")["wsrep_cluster_state_uuid"]
        assert uuid in position  # uuid:seqno of the stopped node, in crm_mon -A
        writer.wait_for_commits(5)
        pcs(galera, "resource", "clear", "galera-clone", "node3")
        wait_all_promoted(galera, "node3 allowed again")
        writer.wait_for_commits(5)
    assert_no_lost_writes(galera, writer)


def test_kill_9_of_one_mariadbd(galera):
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
        kill_mariadbd(galera, "node2")
        wait_for(lambda: not healthy(galera), "the cluster noticing", 60)
        seconds = wait_all_promoted(galera, "after kill -9 of node2's mariadbd")
        writer.wait_for_commits(5)
    print(f"kill -9 of one mariadbd: all Promoted again {seconds:.1f}s after it was noticed")
    assert_no_lost_writes(galera, writer)


def test_kill_9_of_every_mariadbd_at_once(galera):
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
        kill_mariadbd(galera, *NODES)
        wait_for(lambda: not healthy(galera), "the cluster noticing", 60)
        seconds = wait_all_promoted(galera, "after kill -9 of every mariadbd")
        writer.wait_for_commits(5)
    print(f"kill -9 of all three: all Promoted again {seconds:.1f}s after it was noticed")
    assert_no_lost_writes(galera, writer)


def test_a_crashed_node_rejoins_with_its_data(galera):
    with Writer(galera, nodes=("node1", "node2")) as writer:
        writer.wait_for_commits(5)
        galera.crash("node3")
        wait_for(lambda: (roles(galera) or {}).get("node3") is None, "node3 lost", 60)
        writer.wait_for_commits(10)
        assert galera.set_power("node3", "on") == "on"
        wait_all_promoted(galera, "node3 powered on again")
        writer.wait_for_commits(5)
    assert_no_lost_writes(galera, writer)


def test_every_node_crashes_at_once(galera):
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
    for node in NODES:
        galera.crash(node)
    for node in NODES:
        galera.set_power(node, "on")
    seconds = wait_all_promoted(galera, "after every node crashed")
    print(f"every node crashed: all Promoted {seconds:.1f}s after they were powered on")
    assert_no_lost_writes(galera, writer)


def test_every_node_crashes_and_two_come_back_before_the_third(galera):
    """The order that broke RabbitMQ (issue 14), for Galera: node1 and node2 come back while
    node3 stays off. Its position may be the newest, and with bootstrap_with_quorum off
    nobody may bootstrap from a partial view: node1 and node2 report their positions and wait
    Unpromoted, not failed; when node3 returns the election runs and all are Promoted."""
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
    for node in NODES:
        galera.crash(node)
    for node in NODES:
        galera.set_power(node, "off")
    for node in ("node1", "node2"):
        galera.set_power(node, "on")
    both_waiting = {"node1": ("Unpromoted", False), "node2": ("Unpromoted", False)}
    wait_for(
        lambda: roles(galera, ("node1", "node2")) == both_waiting,
        "node1's and node2's instances started, Unpromoted",
        180,
    )
    time.sleep(15)  # several monitors and notifications: still waiting, nothing failed
    assert roles(galera, ("node1", "node2")) == both_waiting
    shown = attributes(galera)
    assert shown.count("galera-position") == 2, shown  # both reported, waiting for node3
    galera.set_power("node3", "on")
    seconds = wait_all_promoted(galera, "node3 back last")
    print(f"every node crashed, node3 back last: all Promoted {seconds:.1f}s after it")
    assert_no_lost_writes(galera, writer)


def test_whole_lab_powered_off_and_on(galera):
    with Writer(galera) as writer:
        writer.wait_for_commits(5)
    for node in NODES:
        galera.set_power(node, "off")
    for node in NODES:
        galera.set_power(node, "on")
    wait_all_promoted(galera, "after the whole lab lost power")
    assert_no_lost_writes(galera, writer)


def test_a_partitioned_node_leaves_and_rejoins(galera):
    with Writer(galera, nodes=("node1", "node2")) as writer:
        writer.wait_for_commits(5)
        galera.partition(["node3"])
        wait_for(
            lambda: wsrep_status(galera, "node1").get("wsrep_cluster_size") == "2",
            "node1's component without node3",
            120,
        )
        writer.wait_for_commits(10)
        # node3 alone has no quorum: Pacemaker stops its instance, Galera makes it non-Primary
        wait_for(
            lambda: wsrep_status(galera, "node3").get("wsrep_cluster_status") != "Primary",
            "node3 out of the Primary Component",
            120,
        )
        galera.heal()
        wait_all_promoted(galera, "partition healed", steady=STEADY_AFTER_HEAL)
        writer.wait_for_commits(5)
    assert_no_lost_writes(galera, writer)
    assert sql(galera, "node3", "SELECT COUNT(*) FROM soak.acked").ok


def test_no_acknowledged_write_is_lost_across_random_faults(galera):
    """The soak, last, on this module's Galera (after the faults above): each round one random
    fault (kill -9 of one or every mariadbd, a node crash, the whole lab's power, a partition);
    after each the cluster must be all Promoted again by itself and every acknowledged row on
    every node. ``STACKHA_SOAK_ROUNDS`` rounds (3 here; ``make soak ROUNDS=N``),
    ``STACKHA_SOAK_SEED`` replays a run: the seed is printed."""
    lab = galera
    print(f"\nsoak: {SOAK_ROUNDS} rounds, seed {SEED} (STACKHA_SOAK_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    recoveries = []
    with Writer(lab) as writer:
        for number in range(1, SOAK_ROUNDS + 1):
            writer.wait_for_commits(5)
            fault = rng.choice(FAULTS)
            started = time.monotonic()
            what = fault(lab, rng)
            wait_for(lambda: not healthy(lab), f"round {number}: the cluster noticing", 90)
            steady = STEADY_AFTER_HEAL if fault is fault_partition else 0.0
            wait_all_promoted(lab, f"round {number}: {what}", steady=steady)
            seconds = time.monotonic() - started
            recoveries.append(seconds)
            writer.wait_for_commits(5)
            assert_no_lost_writes(lab, writer)
            print(
                f"round {number}: {what}; all Promoted after {seconds:.1f}s; "
                f"{len(writer.acknowledged)} rows acknowledged so far, all on every node"
            )
    assert_no_lost_writes(lab, writer)
    print(f"soak: worst recovery {max(recoveries):.1f}s, seed {SEED}")
