"""ocf:stackha:rabbitmq under Pacemaker, on a 3-node lab with real RabbitMQ.

Each fault runs while a publisher sends to a quorum queue, each message waiting for its
confirm, and a consumer drains it; afterwards every confirmed message must have been delivered,
the users and policies must still be there, and the cluster must be whole again by itself.
Fencing is off here; a crashed node is simply lost and powered on again.
"""

from __future__ import annotations

import random
import time

import pytest
from lab_helpers import inside, pcs, wait_for
from rabbitmq_checks import (
    QUEUE,
    Traffic,
    assert_definitions_kept,
    deploy,
    fault_crash_node,
    fault_partition,
    fault_power_cycle_node,
    wait_healthy,
)
from stackha.lab.rabbitmq import NODES, kill_broker, view
from stackha.services import rabbitmq


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


# An outage of every member (issue 14): Pacemaker does not promise to start a clone's
# instances together, so each test forces an order instead of hoping for the bad one.


def whole_among(lab, secrets, nodes):
    """Every broker of ``nodes`` answers and sees exactly the members of ``nodes`` running
    (the others down), with no partition."""
    for node in nodes:
        seen = view(lab, node, secrets["monitor"])
        running = {m for m, (up, parts) in seen.items() if up and not parts}
        if running != {rabbitmq.node_name(n) for n in nodes}:
            return False
        if any(parts for _, parts in seen.values()):
            return False
    return True


def outage(lab, secrets, down_order, first_back, last_back, what):
    """Under traffic: ``down_order`` lose power one after another (a pause between, so that
    the members see each other go), then ``first_back`` are powered on and must form a whole
    RabbitMQ by themselves while the others stay off; then ``last_back`` comes back and
    rejoins. Nothing confirmed is lost, the definitions stay; returns seconds to each step."""
    with Traffic(lab, secrets) as traffic:
        traffic.wait_for_confirms(20)
        for number, node in enumerate(down_order):
            if number:
                time.sleep(down_order[node])
            lab.crash(node)
        for node in down_order:
            lab.set_power(node, "off")
        started = time.monotonic()
        try:
            for node in first_back:
                lab.set_power(node, "on")
            wait_for(
                lambda: whole_among(lab, secrets, first_back),
                f"{what}: RabbitMQ whole on {', '.join(first_back)} with the others off",
                240,
            )
            first = time.monotonic() - started
            for node in last_back:
                lab.set_power(node, "on")
            wait_healthy(lab, secrets, f"{what}: every node back", 240)
            whole = time.monotonic() - started
            traffic.wait_for_confirms(20)
            wait_for(lambda: not traffic.lost(), f"{what}: confirmed ids delivered", 120)
        except AssertionError:
            print(queue_report(lab))
            raise
    assert traffic.lost() == [], f"{what}: confirmed but never delivered"
    assert_definitions_kept(lab)
    print(
        f"{what}: {', '.join(first_back)} whole after {first:.1f}s, every node after "
        f"{whole:.1f}s; {len(traffic.confirmed)} confirmed, none lost"
    )
    return first, whole


def queue_report(lab):
    """What each node says when the brokers do not come back or the queue stops: the queues
    (the quorum queue's leader and members online), its quorum status, crm_mon, the broker's
    log and the agent's lines in Pacemaker's log."""
    lines = []
    for node in NODES:
        commands = (
            ["/usr/sbin/rabbitmqctl", "list_queues", "name", "type", "leader", "members", "online"],
            ["/usr/sbin/rabbitmq-diagnostics", "quorum_status", QUEUE],
            ["crm_mon", "-1", "-A", "-f"],
        )
        for argv in commands:
            try:
                result = lab.node_runner(node).run(argv, timeout=60)
            except Exception as err:  # a node that is off: say so and go on
                lines.append(f"{node} {argv[0]}: {err}")
                continue
            lines.append(f"{node} {' '.join(argv[:2])}: {result.stdout.strip()} {result.stderr}")
        log = lab.node(node).root / f"var/log/rabbitmq/rabbit@{node}.log"
        if log.exists():
            interesting = [
                line
                for line in log.read_text(errors="replace").splitlines()
                if "leader call" not in line and "[error]" not in line and "connection" not in line
            ]
            lines += [f"  {node} log: {line}" for line in interesting[-60:]]
        pacemaker = lab.node(node).root / "var/log/pacemaker/pacemaker.log"
        if pacemaker.exists():
            agent = [
                line
                for line in pacemaker.read_text(errors="replace").splitlines()
                if "rabbitmq" in line and ("INFO" in line or "WARNING" in line or "reason" in line)
            ]
            lines += [f"  {node} pacemaker: {line}" for line in agent[-40:]]
    return "\n".join(lines)


def test_every_node_loses_power_and_two_come_back_before_the_third(rabbit):
    """The issue's failure: instances on node1 and node2 start, node3's does not (its node is
    off): they must not wait for node3's broker; one boots first and the other follows."""
    lab, secrets = rabbit
    outage(
        lab,
        secrets,
        {"node1": 0, "node2": 0, "node3": 0},
        ("node1", "node2"),
        ("node3",),
        "every node down at once, node3 back last",
    )


def test_the_last_node_down_comes_back_last(rabbit):
    """node3 ran last (its data is the newest): node1 and node2 come back without it, one
    boots first with force_boot, and node3 later rejoins them with its data."""
    lab, secrets = rabbit
    outage(
        lab,
        secrets,
        {"node1": 0, "node2": 15, "node3": 15},
        ("node1", "node2"),
        ("node3",),
        "nodes down one by one, the last one back last",
    )


def test_the_last_node_down_comes_back_first_and_boots_first(rabbit):
    """node3 ran last; node1 and node3 come back: node3 boots first, without force_boot
    (its data is the newest), although node1's name sorts first; node2 rejoins later."""
    lab, secrets = rabbit
    outage(
        lab,
        secrets,
        {"node1": 0, "node2": 15, "node3": 15},
        ("node1", "node3"),
        ("node2",),
        "nodes down one by one, the last one back first",
    )
    log = (lab.node("node3").root / "var/log/pacemaker/pacemaker.log").read_text(errors="replace")
    assert "booting first among" in log and "force_boot" not in log.split("booting first")[-1]


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
        assert "'not installed'" in shown, shown  # 5: this node only
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
