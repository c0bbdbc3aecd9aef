"""ocf:stackha:keystone and ocf:stackha:nova-api under Pacemaker, on a 3-node lab: each a clone
behind the haproxy clone and a virtual IP, on Galera, as ``stackha.lab.openstack`` describes.

A client calls the virtual IP from the lab's network throughout each fault and records every
request; the figures printed are what an OpenStack user would have seen. Fencing is off here;
a crashed node is simply lost and powered on again.
"""

from __future__ import annotations

import time

import pytest
from lab_helpers import inside, pcs, wait_for
from openstack_checks import (
    CLONES,
    NODES,
    Client,
    all_started,
    answers_both,
    crash_vip_holder,
    deploy,
    failed_actions,
    settle,
    started_on,
    status_from,
    vip_holder,
)
from stackha.lab import openstack
from stackha.services import openstack_api as api

# What a user may see, at most; measured in this lab (see the printed figures) and set loosely.
CRASH_RECOVERY_S = 60.0
KILL_FAILURES = 5


@pytest.fixture(scope="module")
def deployment(lab):
    deployed = deploy(lab)
    shown = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in deployed.seconds.items())
    print(f"\nkeystone and nova-api behind the VIP: {shown}")
    return deployed


def address_of(lab, node):
    return lab.node(node).address


def test_every_instance_serves_and_a_token_reads_nova_through_the_vip(deployment):
    """Each clone runs on every node, keystone issues a token through the virtual IP and nova
    accepts it, no action failed, and the deep monitors pass on every node."""
    lab = deployment.lab
    status = status_from(lab)
    for clone in CLONES:
        assert started_on(status, clone) == set(NODES), clone
    token = openstack.token_for(lab, deployment.admin())
    answer = openstack.get(lab, deployment.nova_url + "/v2.1/flavors", token=token, timeout=30)
    assert answer.status == 200, api.status_text(answer.status)
    assert "flavors" in answer.body
    for node in NODES:
        for service in (openstack.KEYSTONE, openstack.NOVA_API):
            # the agent's monitor at depth 20 with the resource's own parameters, on this node
            result = inside(lab, node, "crm_resource", "--force-check=20", "-r", service)
            assert result.ok, f"{node}: {service} depth 20: {result.stdout}{result.stderr}"
    assert failed_actions(lab) == []


def test_kill_9_of_a_keystone_master_is_restarted_behind_haproxy(deployment):
    """kill -9 of one node's keystone uwsgi master: Pacemaker restarts it, that node's nova-api
    keeps running, and HAProxy keeps the client's requests on the other nodes."""
    lab = deployment.lab
    settle(lab)
    holder = vip_holder(lab)
    node = next(n for n in NODES if n != holder)
    keystone_pid = openstack.api_pid(lab, node, openstack.KEYSTONE)
    nova_pid = openstack.api_pid(lab, node, openstack.NOVA_API)
    assert keystone_pid and nova_pid
    address = address_of(lab, node)

    def restarted():
        pid = openstack.api_pid(lab, node, openstack.KEYSTONE)
        if pid in (None, keystone_pid) or not answers_both(lab, address):
            return False
        return node in started_on(status_from(lab), openstack.KEYSTONE)

    with Client(deployment) as client:
        killed = time.monotonic()
        lab.kill_9([node], [openstack.PIDFILES[openstack.KEYSTONE]], "uwsgi")
        wait_for(restarted, f"{node}'s keystone restarted and answering", 120)
        restarted_after = time.monotonic() - killed
        client.wait_steady("after the keystone kill")
        outcome = client.outcome(killed)
    print(
        f"\nkill -9 of {node}'s keystone master: restarted and answering after "
        f"{restarted_after:.1f}s; client: {outcome}"
    )
    assert openstack.api_pid(lab, node, openstack.NOVA_API) == nova_pid
    assert outcome.failed <= KILL_FAILURES, str(outcome)
    failures = failed_actions(lab)
    assert any(f.startswith("keystone_monitor_") and f" on {node}:" in f for f in failures), (
        failures
    )
    # A cleanup while the restarted instance's first monitors are in flight loses them:
    # Pacemaker 2.1 then waits out their timeout plus cluster-delay (120 s here) and records a
    # failure of the lost monitor, which restarts keystone again. Clean up once idle.
    settle(lab)
    pcs(lab, "resource", "cleanup", "keystone")
    wait_for(lambda: not failed_actions(lab), "failed actions cleared", 60)
    wait_for(lambda: all_started(lab), "every clone Started again after the cleanup", 60)


def test_the_vip_node_crashes_and_comes_back(deployment):
    """The node holding the virtual IP crashes: the IP moves to a survivor and the client's
    requests all succeed again within CRASH_RECOVERY_S; powered on again, the node serves and
    every clone runs on all three nodes."""
    lab = deployment.lab
    crash = crash_vip_holder(deployment, CRASH_RECOVERY_S)
    print(f"\n{crash}")
    assert crash.moved_to != crash.holder
    assert crash.crash.recovered_after <= CRASH_RECOVERY_S, str(crash.crash)
    survivors = [n for n in NODES if n != crash.holder]
    print(f"failed actions afterwards: {failed_actions(lab, survivors[0]) or 'none'}")
