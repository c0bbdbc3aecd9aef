"""The whole stack as ``make lab`` deploys it (a site file rendered, checked and applied in
two stages; fencing on): it comes up healthy, ``stackha status`` shows it, the APIs' database
traffic goes through HAProxy on the database VIP to one Galera node (and to one other when
that one's mariadbd is killed, the APIs still answering), and a crash of the node holding the
VIP is survived — fenced through fence_stackha_ipmi, back by itself, every service
rejoined."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from lab_helpers import inside, wait_for
from stack_checks import (
    DATABASE_VIP,
    NODES,
    VIP,
    Writer,
    commits_during,
    crash_vip_holder,
    deploy_stack,
    galera_servers,
    stackha_command,
    vip_holder,
    whole,
    writers,
)
from stackha.lab import galera as lab_galera


@pytest.fixture(scope="module")
def deployment(lab):
    deployed = deploy_stack(lab)
    timings = deployed.info["deploy_timings"]
    print(f"\ndeployed in {deployed.info['deploy_seconds']:.1f}s: {timings}")
    log = Path(deployed.info["deploy_log"]).read_text()
    assert log.count("$ stackha cib apply") == 2 and "\n+" in log, "apply logged no diff"
    return deployed


def test_the_stack_comes_up_healthy_with_fencing_on(deployment):
    assert whole(deployment)
    properties = inside(
        deployment.lab, "node1", "crm_attribute", "--query", "--name", "stonith-enabled"
    )
    assert "value=true" in properties.stdout


def test_status_shows_the_stack_as_an_operator_thinks_of_it(deployment):
    result = inside(deployment.lab, "node1", stackha_command(), "status", "--json")
    assert result.ok, result.stderr
    status = json.loads(result.stdout)
    everywhere = sorted(NODES)
    vips = {vip["id"]: (vip["address"], len(vip["held_by"])) for vip in status["vips"]}
    assert vips == {
        VIP: (deployment.vip, 1),
        DATABASE_VIP: (deployment.info["database_vip"], 1),
    }
    serving = {s["id"]: sorted(s["serving"]) for s in status["services"]}
    assert serving["keystone-clone"] == serving["nova-api-clone"] == everywhere, serving
    (galera,) = status["galera"]
    assert [sorted(c["nodes"]) for c in galera["primary_components"]] == [everywhere]
    (rabbitmq,) = status["rabbitmq"]
    assert sorted(m["node"] for m in rabbitmq["members"]) == everywhere
    devices = status["fencing"]["devices"]
    assert sorted(d["id"] for d in devices) == [
        "fence-ipmi-node1",
        "fence-ipmi-node2",
        "fence-ipmi-node3",
        "fence-pdu-lab",
    ]
    assert not [w for d in devices for w in d["warnings"]] and status["fencing"]["enabled"]
    assert len(status["fencing"]["levels"]) == 6
    text = inside(deployment.lab, "node1", stackha_command(), "status")
    assert text.ok, text.stderr
    print(f"\n{text.stdout}")


def the_writer(deployment, seconds=10.0):
    """The one node the APIs' writes land on while a :class:`Writer` runs ``seconds``, with
    the local commits of every node; fails unless exactly one node took them."""
    lab = deployment.lab
    with Writer(deployment) as writer:
        since = time.monotonic()
        deltas = commits_during(lab, lambda: time.sleep(seconds))
        made = len(writer.succeeded(since))
    assert made >= 4, f"only {made} requests succeeded in {seconds:.0f}s"
    assert len(deltas) == len(NODES), f"a node's Galera did not answer: {deltas}"
    assert len(writers(deltas)) == 1, f"writes landed on several nodes: {deltas}"
    return writers(deltas)[0], deltas


def test_the_apis_write_to_one_galera_node_through_haproxy(deployment):
    """Every keystone instance's writes land on one node (wsrep_local_commits grows there
    only; what the others apply for it is not counted), and the HAProxy holding the database
    VIP has sessions open to that server only, the others backup."""
    lab = deployment.lab
    assert whole(deployment)
    writer, deltas = the_writer(deployment)
    print(f"\nlocal commits while writing through the VIPs: {deltas}")
    holder = vip_holder(lab, vip=DATABASE_VIP)
    assert holder, "no node holds the database VIP"
    servers = galera_servers(lab, holder)
    print(f"HAProxy on {holder} (database VIP): {servers}")
    assert {name: status for name, (status, _, _) in servers.items()} == dict.fromkeys(NODES, "UP")
    assert [name for name, (_, current, _) in servers.items() if current] == [writer]


def test_a_killed_writer_moves_the_writes_to_one_backup_and_the_apis_keep_answering(deployment):
    """kill -9 of mariadbd on the node taking the writes: HAProxy's check marks it down and
    closes its sessions, the writes go to one other node, the APIs answer again within
    seconds; Pacemaker recovers that mariadbd, and the node back in the Primary Component
    does not take the writes back (the stick table keeps one writer)."""
    lab = deployment.lab
    old, _ = the_writer(deployment)
    with Writer(deployment) as writer:
        killed = time.monotonic()
        lab_galera.kill_mariadbd(lab, old)
        writer.wait_steady("after the writer's mariadbd was killed", timeout=90)
        outage = writer.failed_window(killed)
        print(f"\nmariadbd killed on {old}: writes {writer.outcome(killed)}")
        deltas = commits_during(lab, lambda: time.sleep(10))
        print(f"local commits after the kill: {deltas}")
        assert len(writers(deltas)) == 1 and writers(deltas)[0] != old, deltas
        new = writers(deltas)[0]
        wait_for(lambda: lab_galera.healthy(lab, NODES), f"{old} back in Galera", 300)
        back = time.monotonic() - killed
        writer.wait_steady("after its return")
        deltas = commits_during(lab, lambda: time.sleep(10))
        print(f"{old} Synced again after {back:.1f}s; local commits then: {deltas}")
        assert writers(deltas) == [new], deltas
    assert outage < 30, f"writes failed for {outage:.1f}s after the kill"
    assert whole(deployment)


def test_a_crash_of_the_vip_node_is_fenced_and_every_service_recovers(deployment):
    round_ = crash_vip_holder(deployment)
    print(f"\n{round_}")
    assert round_.fencing[1] == f"fence-ipmi-{round_.holder}", round_.fencing
    assert round_.moved_to != round_.holder
