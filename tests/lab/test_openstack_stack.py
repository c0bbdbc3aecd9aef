"""The whole stack as ``make lab`` deploys it (a site file rendered, checked and applied in
two stages; fencing on): it comes up healthy, ``stackha status`` shows it, and a crash of
the node holding the VIP is survived — fenced through fence_stackha_ipmi, back by itself,
every service rejoined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_helpers import inside
from stack_checks import NODES, VIP, crash_vip_holder, deploy_stack, stackha_command, whole


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
    (vip,) = status["vips"]
    assert (vip["id"], vip["address"], len(vip["held_by"])) == (VIP, deployment.vip, 1)
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


def test_a_crash_of_the_vip_node_is_fenced_and_every_service_recovers(deployment):
    round_ = crash_vip_holder(deployment)
    print(f"\n{round_}")
    assert round_.fencing[1] == f"fence-ipmi-{round_.holder}", round_.fencing
    assert round_.moved_to != round_.holder
