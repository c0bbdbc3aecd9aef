"""ocf:stackha:rabbitmq under Pacemaker, on a 3-node lab with real RabbitMQ.

Each fault runs while a publisher sends to a quorum queue, each message waiting for its
confirm, and a consumer drains it; afterwards every confirmed message must have been delivered,
the users and policies must still be there, and the cluster must be whole again by itself.
Fencing is off here; a crashed node is simply lost and powered on again. Last, the soak:
random faults in rounds on the same RabbitMQ.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from lab_helpers import inside, pcs, wait_for
from rabbitmq_checks import (
    FAULTS,
    Traffic,
    assert_definitions_kept,
    deploy,
    fault_crash_node,
    fault_partition,
    fault_power_cycle_node,
    wait_healthy,
)
from stackha.lab.rabbitmq import NODES, healthy, kill_broker, view
from stackha.services import rabbitmq

SOAK_ROUNDS = int(os.environ.get("STACKHA_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("STACKHA_SOAK_SEED") or time.time_ns() % 1_000_000)


@pytest.fixture(scope="module")
def rabbit(lab):
    secrets, seconds = deploy(lab)
    print(f"\ncold start to a whole cluster of three: {seconds:.1f}s")
    return lab, secrets


def recover_from(lab, secrets, fault, what):
    """Run ``fault`` under traffic; check nothing confirmed was lost; returns seconds to whole."""
    with Traffic(lab, secrets) as traffic:
        traffic.wait_for_confirms(20)
        started = time.monotonic()
        fault()
        wait_healthy(lab, secrets, what)
        seconds = time.monotonic() - started
        traffic.wait_for_confirms(20)
    assert traffic.lost() == [], f"{what}: confirmed but never delivered"
    assert_definitions_kept(lab)
    print(f"{what}: whole after {seconds:.1f}s, {len(traffic.confirmed)} confirmed, none lost")
    return seconds


def test_cold_start_forms_one_cluster_with_the_definitions(rabbit):
    lab, secrets = rabbit
    members = {rabbitmq.node_name(n) for n in NODES}
    for node in NODES:
        assert view(lab, node, secrets["monitor"]) == {m: (True, ()) for m in members}
    result = lab.node_runner("node2").run(
        ["/usr/sbin/rabbitmqctl", "cluster_status", "--formatter", "json"], timeout=60
    )
    status = rabbitmq.parse_cluster_status(result.stdout)
    assert set(status.members) == members and set(status.running) == members
    assert_definitions_kept(lab, "node3")
    # the partition handling the agent runs with, whatever rabbitmq.conf says
    result = lab.node_runner("node1").run(
        [
            "/usr/sbin/rabbitmqctl",
            "eval",
            "application:get_env(rabbit, cluster_partition_handling).",
        ],
        timeout=60,
    )
    assert "pause_minority" in result.stdout


def test_kill_9_of_one_broker(rabbit):
    lab, secrets = rabbit
    recover_from(lab, secrets, lambda: kill_broker(lab, "node2"), "kill -9 of node2's broker")


def test_a_node_crashes_and_comes_back_with_its_data(rabbit):
    lab, secrets = rabbit
    rng = random.Random(3)  # node3, powered on again after a few seconds
    recover_from(lab, secrets, lambda: fault_crash_node(lab, rng), "a node crash")


def test_a_node_powered_off_and_on(rabbit):
    lab, secrets = rabbit
    rng = random.Random(1)
    recover_from(lab, secrets, lambda: fault_power_cycle_node(lab, rng), "power off and on")


def test_a_partitioned_node_pauses_and_rejoins_when_healed(rabbit):
    lab, secrets = rabbit
    rng = random.Random(2)
    recover_from(lab, secrets, lambda: fault_partition(lab, rng), "a partition of one node")


def test_a_node_with_another_erlang_cookie_is_refused_alone_and_keeps_its_data(rabbit):
    lab, secrets = rabbit
    pcs(lab, "resource", "ban", "rabbitmq-clone", "node3")
    wait_for(lambda: not started_on(lab, "node3"), "node3's instance stopped", 120)
    cookie = lab.node("node3").root / "var/lib/rabbitmq/.erlang.cookie"
    right = cookie.read_text()
    write_cookie(cookie, "WRONG" + right[5:])
    try:
        pcs(lab, "resource", "clear", "rabbitmq-clone", "node3")
        wait_for(
            lambda: "Erlang cookie" in inside(lab, "node1", "crm_mon", "-1").stdout,
            "node3's start refused",
            180,
        )
        shown = inside(lab, "node1", "crm_mon", "-1").stdout
        # 5: this node only (Pacemaker 3.0 writes 'Not installed', 2.1 'not installed')
        assert "'not installed'" in shown.lower(), shown
        seen = view(lab, "node1", secrets["monitor"])
        assert seen["rabbit@node1"][0] and seen["rabbit@node2"][0], seen  # still serving
        data = lab.node("node3").root / "var/lib/rabbitmq/mnesia/rabbit@node3"
        assert (data / "cluster_nodes.config").exists()  # nothing deleted
    finally:
        write_cookie(cookie, right)
        pcs(lab, "resource", "cleanup", "rabbitmq-clone")
    wait_healthy(lab, secrets, "node3 with the right cookie")
    assert_definitions_kept(lab, "node3")


def started_on(lab, node):
    status = lab.node("node1").status()
    return bool(status) and any(
        node in r.nodes and r.role == "Started" for r in status.instances("rabbitmq")
    )


def write_cookie(path, text):
    path.chmod(0o600)
    path.write_text(text)
    path.chmod(0o400)


def test_no_confirmed_message_is_lost_across_random_faults(rabbit):
    """The soak, last, on this module's RabbitMQ (after the faults above): each round one random
    fault under traffic; after each the cluster must be whole again by itself, every confirmed
    message delivered, the definitions kept. ``STACKHA_SOAK_ROUNDS`` rounds (3 here; ``make
    soak ROUNDS=N``), ``STACKHA_SOAK_SEED`` replays a run: the seed is printed."""
    lab, secrets = rabbit
    print(f"\nsoak: {SOAK_ROUNDS} rounds, seed {SEED} (STACKHA_SOAK_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    recoveries = []
    with Traffic(lab, secrets) as traffic:
        for number in range(1, SOAK_ROUNDS + 1):
            traffic.wait_for_confirms(20)
            fault = rng.choice(FAULTS)
            started = time.monotonic()
            what = fault(lab, rng)
            wait_for(lambda: not healthy(lab, secrets["monitor"]), f"round {number}: noticed", 90)
            wait_healthy(lab, secrets, f"round {number}: {what}")
            seconds = time.monotonic() - started
            recoveries.append(seconds)
            traffic.wait_for_confirms(20)
            wait_for(lambda: not traffic.lost(), f"round {number}: confirmed ids delivered", 120)
            assert_definitions_kept(lab)
            print(
                f"round {number}: {what}; whole after {seconds:.1f}s; "
                f"{len(traffic.confirmed)} confirmed so far, all delivered"
            )
    assert traffic.lost() == []
    print(
        f"soak: {len(traffic.confirmed)} confirmed, none lost, {traffic.reconnects} publisher "
        f"reconnects, worst recovery {max(recoveries):.1f}s, seed {SEED}"
    )
