"""RabbitMQ on the lab, driven by hand with stackha.services.rabbitmq (the agent's groundwork):
provisioning forms a cluster of three, the parsers read what RabbitMQ 3.10 really prints, the
health judgement sees a real partition under pause_minority, and passwords go on stdin."""

from __future__ import annotations

import json
import secrets
import sys

import pytest
from agent_runs import command_lines_watched_for
from lab_helpers import wait_for
from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.runner import Spawn
from stackha.services import rabbitmq

NODES = ("node1", "node2", "node3")
MEMBERS = tuple(rabbitmq.node_name(n) for n in NODES)
MONITOR = "stackha-monitor"
# Run inside a node: the health of the cluster as that node's management API reports it. The
# password comes on stdin, never in argv.
HEALTH = """
import json, sys
from stackha.services import rabbitmq as r
me, address, members = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
password = sys.stdin.readline().strip()
try:
    nodes = r.fetch_nodes(address, 15672, "stackha-monitor", password, timeout=5)
except r.RabbitError as err:
    print(json.dumps({"error": type(err).__name__, "reason": str(err)}))
    raise SystemExit(0)
problem = r.judge(me, nodes, members, deep=True)
print(json.dumps({"problem": problem.reason if problem else None, "nodes": sorted(nodes)}))
"""


def run(lab, node, *argv, stdin=None, timeout=120):
    result = lab.node_runner(node).run(list(argv), timeout=timeout, stdin=stdin)
    assert result.ok, f"{node}: {' '.join(argv)}: {result.output_line()}"
    return result


def health(lab, node, password):
    address = next(n.address for n in lab.load().nodes if n.name == node)
    result = lab.node_runner(node).run(
        [sys.executable, "-I", "-c", HEALTH, rabbitmq.node_name(node), address, ",".join(MEMBERS)],
        stdin=password + "\n",
        timeout=30,
    )
    assert result.ok, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def rabbit(lab):
    lab_rabbitmq.provision(lab)
    for node in NODES:
        run(lab, node, "/bin/mkdir", "-p", "/run/rabbitmq", "/var/log/rabbitmq")
        run(lab, node, "/bin/chown", "rabbitmq:rabbitmq", "/run/rabbitmq", "/var/log/rabbitmq")
        lab.node_runner(node).spawn(
            Spawn(
                ("/usr/sbin/rabbitmq-server",),
                env={"RABBITMQ_PID_FILE": "/run/rabbitmq/pid"},
                output_path=str(lab.node(node).root / "var/log/rabbitmq-server.out"),
            )
        )
    for node in NODES:
        run(lab, node, rabbitmq.RABBITMQCTL, "wait", "--timeout", "120", "/run/rabbitmq/pid")
    for node in NODES[1:]:
        for argv in rabbitmq.join_argv(rabbitmq.node_name("node1")):
            run(lab, node, *argv)
    password = secrets.token_hex(12)
    with command_lines_watched_for(password) as exposed:
        run(lab, "node1", *rabbitmq.add_user_argv(MONITOR), stdin=password + "\n")
    assert not exposed, "the password was on a command line"
    run(lab, "node1", rabbitmq.RABBITMQCTL, "set_user_tags", MONITOR, "monitoring")
    return lab, password


def test_provisioned_brokers_form_one_cluster_and_say_so(rabbit):
    lab, password = rabbit
    result = run(lab, "node2", rabbitmq.RABBITMQCTL, "cluster_status", "--formatter", "json")
    status = rabbitmq.parse_cluster_status(result.stdout)
    assert sorted(status.members) == sorted(MEMBERS)
    assert sorted(status.running) == sorted(MEMBERS)
    assert status.partitions == {} and status.alarms == ()
    for node in NODES:
        assert health(lab, node, password) == {"problem": None, "nodes": sorted(MEMBERS)}


def test_wrong_monitoring_credentials_are_refused_naming_the_user(rabbit):
    lab, _ = rabbit
    answer = health(lab, "node1", "not-the-password")
    assert answer["error"] == "CredentialsError"
    assert f"refused user {MONITOR}" in answer["reason"]


def test_a_partitioned_node_pauses_and_the_others_see_it_missing(rabbit):
    lab, password = rabbit
    lab.partition(["node3"])
    answers = []  # what node1 said meanwhile (while RabbitMQ notices, the API may time out)

    def node1_sees_node3_gone():
        answers.append(health(lab, "node1", password))
        return answers[-1].get("problem") == (
            "members Pacemaker runs are not in the cluster: rabbit@node3"
        )

    try:
        wait_for(node1_sees_node3_gone, "node1 seeing node3 gone", 120)
        print(f"node1's answers until then: {[a.get('problem') or a for a in answers]}")
        # pause_minority: node3, alone, stops serving: its management API goes away too
        wait_for(lambda: "problem" not in health(lab, "node3", password), "node3 paused", 120)
    finally:
        lab.heal()
    for node in NODES:
        wait_for(
            lambda node=node: health(lab, node, password).get("problem", "x") is None,
            f"{node} healthy after the partition healed",
            180,
        )
