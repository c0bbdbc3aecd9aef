"""The crm_simulate scenarios without Pacemaker: the expectations (stackha.cib.expectations)
applied to hand-made placements of configurations read from hand-made CIB XML, and the
scenario loop (stackha.cib.simulate) against a fake crm_simulate."""

import xml.etree.ElementTree as ET

import pytest
from cib_builders import (
    CONTROLLER_NODES,
    GALERA,
    HAPROXY,
    HAPROXY_WITH_VIP,
    KEYSTONE,
    KEYSTONE_AFTER_GALERA,
    NODES,
    VIP,
    VIP_WITH_HAPROXY,
    cib_xml,
    clone,
    configuration,
    fence_device,
    meta,
    primitive,
)
from stackha.cib import expectations, simulate
from stackha.cib.model import CibError, read_configuration
from stackha.pacemaker.crm_simulate import SimulationFailed, parse_simulation


def everywhere(role="Started", nodes=NODES):
    return {node: role for node in nodes}


def problems(config, placement, online=NODES, scenario="start-up"):
    return expectations.check_placement(config, placement, online, scenario).problems


# --- a. clones on every node, and the HA Guide's inverted colocation ------------------------


def test_the_ha_guide_inverted_colocation_leaves_the_clone_on_the_vip_node_only():
    """haproxy-clone colocated with the VIP runs only where the VIP is: reported with why."""
    config = configuration(resources=VIP + HAPROXY, constraints=HAPROXY_WITH_VIP)
    placement = {"vip-public": {"node1": "Started"}, "haproxy": {"node1": "Started"}}
    assert problems(config, placement) == [
        "start-up: haproxy-clone runs on node1 only, expected on every online node "
        "(node1 node2 node3): it is colocated INFINITY with vip-public (haproxy-with-vip), "
        "which runs on node1 only"
    ]


def test_the_vip_colocated_with_the_clone_passes():
    """The TripleO direction: HAProxy everywhere, the VIP on one of them."""
    config = configuration(resources=VIP + HAPROXY, constraints=VIP_WITH_HAPROXY)
    placement = {"vip-public": {"node2": "Started"}, "haproxy": everywhere()}
    assert problems(config, placement) == []


def test_a_clone_is_expected_only_on_online_nodes_it_is_allowed_on():
    """A -INFINITY location and a lost node shrink what a clone is expected on."""
    config = configuration(
        resources=HAPROXY,
        constraints='<rsc_location id="ban" rsc="haproxy-clone" node="node3" score="-INFINITY"/>',
    )
    assert problems(config, {"haproxy": {"node2": "Started"}}) == [
        "start-up: haproxy-clone runs on node2 only, expected on every online node it is "
        "allowed on (node1 node2)"
    ]
    assert problems(config, {"haproxy": everywhere(nodes=("node1", "node2"))}) == []
    assert problems(config, {"haproxy": {"node2": "Started"}}, online=("node2", "node3")) == []


def test_clone_max_below_the_node_count_expects_that_many_instances():
    """clone-max=2 on three nodes: two instances, wherever they are."""
    config = configuration(resources=clone("memcached-clone", "memcached", clone_max="2"))
    assert problems(config, {"memcached": everywhere(nodes=("node1", "node3"))}) == []
    assert problems(config, {"memcached": {"node1": "Started"}}) == [
        "start-up: memcached-clone runs on node1 only, expected on 2 (clone-max) of "
        "node1 node2 node3"
    ]


def test_an_exclusive_discovery_rule_on_a_node_attribute_is_evaluated():
    """The TripleO role-attribute rule: a clone is expected only on nodes with the attribute
    (node3 has none)."""
    rule = (
        '<rsc_location id="on-controllers" rsc="haproxy-clone" resource-discovery="exclusive">'
        '<rule id="on-controllers-rule" score="0">'
        '<expression id="on-controllers-expr" attribute="osp-controller" operation="eq" '
        'value="true"/></rule></rsc_location>'
    )
    config = configuration(resources=HAPROXY, constraints=rule, nodes=CONTROLLER_NODES)
    assert problems(config, {"haproxy": everywhere(nodes=("node1", "node2"))}) == []
    assert problems(config, {"haproxy": {"node1": "Started"}}) == [
        "start-up: haproxy-clone runs on node1 only, expected on every online node it is "
        "allowed on (node1 node2)"
    ]


def test_a_rule_that_cannot_be_evaluated_offline_skips_the_check_with_a_note():
    """A date rule: where the clone may run is unknown, so nothing is expected of it."""
    rule = (
        '<rsc_location id="office-hours" rsc="haproxy-clone"><rule id="r" score="-INFINITY">'
        '<date_expression id="d" operation="gt" start="2030-01-01"/></rule></rsc_location>'
    )
    config = configuration(resources=HAPROXY, constraints=rule)
    findings = expectations.check_placement(config, {}, NODES, "start-up")
    assert findings.problems == []
    assert any("haproxy-clone" in note and "office-hours" in note for note in findings.notes)


# --- b. promotion -----------------------------------------------------------------------------


def test_a_promotable_clone_is_promoted_on_every_node_promoted_max_allows():
    """promoted-max=3 on three nodes: an instance left Unpromoted is a problem."""
    config = configuration(resources=GALERA)
    placement = {"galera": {"node1": "Promoted", "node2": "Unpromoted", "node3": "Promoted"}}
    assert problems(config, placement) == [
        "start-up: galera-clone is Promoted on node1 node3, expected Promoted on every node it "
        "runs on (node1 node2 node3), promoted-max=3"
    ]
    assert problems(config, {"galera": everywhere("Promoted")}) == []


def test_a_smaller_promoted_max_expects_exactly_that_many_promoted():
    """promoted-max=1: one Promoted instance, not two."""
    config = configuration(resources=clone("db-clone", "db", promotable="true"))
    assert problems(config, {"db": {"node1": "Promoted", "node2": "Unpromoted"}}) == [
        "start-up: db-clone runs on node1 node2, expected on every online node (node1 node2 node3)"
    ]
    two = {"db": {"node1": "Promoted", "node2": "Promoted", "node3": "Unpromoted"}}
    assert problems(config, two) == [
        "start-up: db-clone is Promoted on node1 node2, expected on exactly 1 of "
        "node1 node2 node3 (promoted-max=1)"
    ]


def test_the_legacy_master_element_and_master_max_are_read():
    """<master> with master-max is a promotable clone with promoted-max."""
    legacy = (
        f'<master id="galera-master">{meta("galera-master", master_max="3")}'
        '<primitive id="galera" class="ocf" provider="heartbeat" type="galera"/></master>'
    )
    config = configuration(resources=legacy)
    assert simulate.promotion_attributes(config) == ("master-galera",)
    placement = {"galera": {"node1": "Promoted", "node2": "Unpromoted"}}
    assert problems(config, placement, online=("node1", "node2")) == [
        "start-up: galera-master is Promoted on node1 only, expected Promoted on every node it "
        "runs on (node1 node2), promoted-max=3"
    ]


# --- c. colocations ---------------------------------------------------------------------------


def test_a_vip_off_the_nodes_of_its_clone_is_reported():
    """vip-public with haproxy-clone on a node without HAProxy."""
    config = configuration(resources=VIP + HAPROXY, constraints=VIP_WITH_HAPROXY)
    placement = {
        "vip-public": {"node3": "Started"},
        "haproxy": everywhere(nodes=("node1", "node2")),
    }
    found = problems(config, placement, online=("node1", "node2", "node3"))
    assert (
        "start-up: vip-public runs on node3, where haproxy-clone does not run "
        "(colocation vip-with-haproxy: vip-public with haproxy-clone, INFINITY)"
    ) in found


def test_a_vip_colocated_with_the_promoted_role_must_be_on_a_promoted_instance():
    """with-rsc-role=Promoted: an Unpromoted instance on the node is not enough."""
    constraint = (
        '<rsc_colocation id="vip-db-on-primary" rsc="vip-db" with-rsc="db-clone" '
        'with-rsc-role="Promoted" score="INFINITY"/>'
    )
    config = configuration(
        resources=primitive("vip-db") + clone("db-clone", "db", promotable="true"),
        constraints=constraint,
    )
    placement = {
        "vip-db": {"node2": "Started"},
        "db": {"node1": "Promoted", "node2": "Unpromoted", "node3": "Unpromoted"},
    }
    assert problems(config, placement) == [
        "start-up: vip-db runs on node2, where db-clone is not Promoted (colocation "
        "vip-db-on-primary: vip-db with Promoted db-clone, INFINITY)"
    ]
    placement["vip-db"] = {"node1": "Started"}
    assert problems(config, placement) == []


# --- d. orderings -----------------------------------------------------------------------------


def test_an_interleaved_clone_runs_only_where_what_it_is_ordered_after_has_been_promoted():
    """keystone after promote galera, interleaved: a keystone where galera is not Promoted."""
    config = configuration(resources=GALERA + KEYSTONE, constraints=KEYSTONE_AFTER_GALERA)
    placement = {
        "galera": {"node1": "Promoted", "node2": "Promoted", "node3": "Unpromoted"},
        "keystone": everywhere(),
    }
    found = problems(config, placement)
    assert (
        "start-up: keystone-clone runs on node3, where galera-clone is not Promoted "
        "(order galera-then-keystone: promote galera-clone then start keystone-clone, "
        "interleaved)"
    ) in found


def test_a_non_interleaved_clone_needs_what_it_is_ordered_after_somewhere():
    """Without interleave, one Promoted galera anywhere is enough; none is a problem."""
    keystone = clone("keystone-clone", "keystone")
    config = configuration(resources=GALERA + keystone, constraints=KEYSTONE_AFTER_GALERA)
    one_promoted = {"galera": {"node1": "Promoted"}, "keystone": everywhere()}
    assert not any("order" in p for p in problems(config, one_promoted))
    none_promoted = {"galera": everywhere("Unpromoted"), "keystone": everywhere()}
    assert (
        "start-up: keystone-clone runs on node1 node2 node3 while galera-clone is Promoted on "
        "no node (order galera-then-keystone: promote galera-clone then start keystone-clone)"
    ) in problems(config, none_promoted)


# --- e. fence devices -------------------------------------------------------------------------


def test_a_fence_device_on_the_node_it_fences_is_reported():
    """fence-node1 (pcmk_host_list=node1) running on node1."""
    config = configuration(resources=fence_device("fence-node1", pcmk_host_list="node1"))
    assert problems(config, {"fence-node1": {"node1": "Started"}}) == [
        "start-up: fence-node1 runs on node1, the node it fences"
    ]
    assert problems(config, {"fence-node1": {"node2": "Started"}}) == []


def test_a_device_that_fences_every_node_is_noted_not_reported():
    """A PDU feeding every node must run on one of them."""
    pdu = fence_device("fence-pdu", pcmk_host_map="node1:1;node2:2;node3:3")
    config = configuration(resources=pdu)
    findings = expectations.check_placement(config, {"fence-pdu": {"node1": "Started"}}, NODES, "s")
    assert findings.problems == []
    assert "fence-pdu fences every node: where it runs is not checked" in findings.notes
    assert expectations.check_configuration(config).problems == []


def test_the_configuration_check_reports_a_device_allowed_on_its_target():
    """Without a -INFINITY location the device may land on the node it fences."""
    devices = fence_device("fence-node1", pcmk_host_list="node1") + fence_device(
        "fence-node2", pcmk_host_list="node2"
    )
    ban = '<rsc_location id="f2-avoids" rsc="fence-node2" node="node2" score="-INFINITY"/>'
    config = configuration(resources=devices, constraints=ban)
    assert expectations.check_configuration(config).problems == [
        "configuration: fence-node1 fences node1 and may run on node1 (no -INFINITY location "
        "constraint keeps it off node1)"
    ]


# --- f. everything expected to run runs -------------------------------------------------------


def test_a_resource_active_nowhere_is_reported_with_what_holds_it_back():
    """vip-db needs a Promoted db-clone, and none is: the problem says so."""
    constraint = (
        '<rsc_colocation id="vip-db-on-primary" rsc="vip-db" with-rsc="db-clone" '
        'with-rsc-role="Promoted" score="INFINITY"/>'
    )
    stopped_db = clone("db-clone", "db", promotable="true", target_role="Stopped")
    config = configuration(resources=primitive("vip-db") + stopped_db, constraints=constraint)
    assert problems(config, {}) == [
        "start-up: vip-db is active on no node, expected on one of node1 node2 node3: it is "
        "colocated INFINITY with Promoted db-clone (vip-db-on-primary), which is Promoted on "
        "no node"
    ]


def test_what_the_configuration_stops_or_does_not_manage_is_not_expected_to_run():
    """target-role=Stopped (on the clone, inherited) and is-managed=false expect nothing."""
    config = configuration(
        resources=clone("off-clone", "off", target_role="Stopped")
        + primitive("unmanaged", is_managed="false")
    )
    findings = expectations.check_placement(config, {}, NODES, "start-up")
    assert findings.problems == []
    assert "unmanaged is not managed: where it runs is not checked" in findings.notes


# --- reading crm_simulate ---------------------------------------------------------------------


def simulation_output(placement, online=NODES, offline=(), transition=()):
    """A crm_simulate --simulate --output-as=xml document (Pacemaker 2.1.5's form)."""
    nodes = "".join(
        f'<node name="{n}" online="{"true" if n in online else "false"}" standby="false" '
        'maintenance="false"/>'
        for n in (*online, *offline)
    )
    resources = "".join(
        f'<resource id="{rid}" role="{role}" active="true" orphaned="false">'
        f'<node name="{node}" id="x" cached="true"/></resource>'
        for rid, on_nodes in placement.items()
        for node, role in on_nodes.items()
    )
    return (
        '<pacemaker-result api-version="2.25" request="crm_simulate">'
        f"<cluster_status><nodes>{nodes}</nodes></cluster_status>"
        f"<transition>{''.join(transition)}</transition>"
        f"<revised_cluster_status><nodes>{nodes}</nodes><resources>{resources}</resources>"
        '</revised_cluster_status><status code="0" message="OK"/></pacemaker-result>'
    )


def test_a_simulation_is_read_into_placement_fencing_and_what_it_did():
    """Clone instances fold into their primitive; a promoted instance wins over a stopped
    one; offline nodes are not online; fencing is seen."""
    text = (
        '<pacemaker-result api-version="2.25" request="crm_simulate">'
        '<transition><fencing_action target="node2" op="reboot"/>'
        '<rsc_action resource="vip" op="start" node="node3"/></transition>'
        "<revised_cluster_status><nodes>"
        '<node name="node1" online="true" standby="false"/>'
        '<node name="node2" online="false" standby="false"/>'
        '<node name="node3" online="true" standby="true"/></nodes><resources>'
        '<clone id="galera-clone" multi_state="true">'
        '<resource id="galera" role="Promoted"><node name="node1"/></resource>'
        '<resource id="galera" role="Stopped"/></clone>'
        '<clone id="unique-clone"><resource id="u:0" role="Started"><node name="node1"/>'
        "</resource></clone>"
        '<resource id="vip" role="Started"><node name="node3"/></resource>'
        "</resources></revised_cluster_status></pacemaker-result>"
    )
    result = parse_simulation(text)
    assert result.fenced == ("node2",)
    assert result.online_nodes == ("node1",)
    assert result.placement == {
        "galera": {"node1": "Promoted"},
        "u": {"node1": "Started"},
        "vip": {"node3": "Started"},
    }
    assert len(result.transition) == 2


def test_pseudo_actions_alone_are_a_settled_cluster():
    """Pacemaker 2.1.5 repeats a blocked clone's start/running pseudo-actions forever."""
    pseudo = (
        '<pseudo_action task="keystone-clone_start_0"/>',
        '<pseudo_action task="keystone-clone_running_0"/>',
    )
    assert parse_simulation(simulation_output({}, transition=pseudo)).transition == ()


def test_promotion_scores_are_injected_for_every_node_and_promotable_primitive():
    """A master-<primitive> transient attribute per node, in an existing node_state or a new
    one."""
    existing = '<node_state id="2" uname="node2"><lrm id="2"/></node_state>'
    cib = ET.fromstring(cib_xml(resources=GALERA + HAPROXY, status=existing))
    simulate.inject_promotion_scores(cib, read_configuration(cib))
    states = cib.findall("status/node_state")
    assert [s.get("uname") for s in states] == ["node2", "node1", "node3"]
    for state in states:
        node_id = state.get("id")
        pair = state.find("transient_attributes/instance_attributes/nvpair")
        assert pair.attrib == {
            "id": f"status-{node_id}-master-galera",
            "name": "master-galera",
            "value": "100",
        }
    assert states[0].find("lrm") is not None


# --- the scenario loop, against a fake crm_simulate -------------------------------------------


def argv(tmp_path, source, target):
    return [
        "/usr/sbin/crm_simulate",
        "--xml-file",
        str(tmp_path / source),
        "--simulate",
        "--save-output",
        str(tmp_path / target),
        "--output-as=xml",
    ]


def events(tmp_path, source, target, *given):
    """The call that applies events before a simulation (Pacemaker 3.0.0 cuts short the XML of
    a simulation given events)."""
    return [
        "/usr/sbin/crm_simulate",
        "--xml-file",
        str(tmp_path / source),
        "--quiet",
        "--output-as=xml",
        *given,
        "--save-output",
        str(tmp_path / target),
    ]


EVENTS_OK = '<pacemaker-result><status code="0" message="OK"/></pacemaker-result>'


TWO_NODES = '<node id="1" uname="node1"/><node id="2" uname="node2"/>'
FENCE_NODE = '<fencing_action target="{}" op="reboot"/>'
START = '<rsc_action resource="haproxy" op="start" node="node1"/>'


def test_scenarios_run_start_up_to_stability_then_lose_each_node(tmp_path, fake_runner, fake_clock):
    """Start-up brings every node up with quorum, later rounds only simulate; each node is
    then lost from the started CIB; a lost node that was not fenced is a problem."""
    cib_path = tmp_path / "cib.xml"
    cib_path.write_text(cib_xml(resources=HAPROXY, nodes=TWO_NODES))
    up = {"haproxy": everywhere(nodes=("node1", "node2"))}
    fake_runner.expect(
        events(
            tmp_path,
            "start-up-0.xml",
            "start-up-1-events.xml",
            *("--quorum", "true", "--node-up", "node1", "--node-up", "node2"),
        ),
        stdout=EVENTS_OK,
    )
    fake_runner.expect(
        argv(tmp_path, "start-up-1-events.xml", "start-up-1.xml"),
        stdout=simulation_output(up, online=("node1", "node2"), transition=(START,)),
    )
    fake_runner.expect(
        argv(tmp_path, "start-up-1.xml", "start-up-2.xml"),
        stdout=simulation_output(up, online=("node1", "node2")),
    )
    fake_runner.expect(
        events(tmp_path, "start-up-2.xml", "node1-lost-1-events.xml", "--node-fail", "node1"),
        stdout=EVENTS_OK,
    )
    fake_runner.expect(
        argv(tmp_path, "node1-lost-1-events.xml", "node1-lost-1.xml"),
        stdout=simulation_output(
            {"haproxy": {"node2": "Started"}},
            online=("node2",),
            offline=("node1",),
            transition=(FENCE_NODE.format("node1"),),
        ),
    )
    fake_runner.expect(
        argv(tmp_path, "node1-lost-1.xml", "node1-lost-2.xml"),
        stdout=simulation_output({"haproxy": {"node2": "Started"}}, ("node2",), ("node1",)),
    )
    fake_runner.expect(
        events(tmp_path, "start-up-2.xml", "node2-lost-1-events.xml", "--node-fail", "node2"),
        stdout=EVENTS_OK,
    )
    fake_runner.expect(
        argv(tmp_path, "node2-lost-1-events.xml", "node2-lost-1.xml"),
        stdout=simulation_output({"haproxy": {"node1": "Started"}}, ("node1",), ("node2",)),
    )

    results = simulate.run_scenarios(cib_path, fake_runner, tmp_path, clock=fake_clock)

    assert [(r.name, r.problems, r.rounds) for r in results] == [
        ("configuration", (), 0),
        ("start-up", (), 2),
        ("node1 lost", (), 2),
        ("node2 lost", ("node2 lost: node2 was not fenced (stonith-enabled is true)",), 1),
    ]
    assert results[1].placement["haproxy-clone"] == {"node1": "Started", "node2": "Started"}
    assert "master-" not in (tmp_path / "start-up-0.xml").read_text()


def test_a_cib_crm_simulate_refuses_is_a_start_up_problem(tmp_path, fake_runner):
    """crm_simulate's schema error becomes the problem; no node-lost scenario runs."""
    cib_path = tmp_path / "cib.xml"
    cib_path.write_text(cib_xml(resources=HAPROXY, nodes=TWO_NODES))
    fake_runner.expect(
        events(
            tmp_path,
            "start-up-0.xml",
            "start-up-1-events.xml",
            *("--quorum", "true", "--node-up", "node1", "--node-up", "node2"),
        ),
        returncode=78,
        stdout='<pacemaker-result><status code="78" message="Invalid configuration"/>'
        "</pacemaker-result>",
        stderr="cib.xml:9: element rsc_order: validity error : IDREF attribute first references "
        'an unknown ID "galera-clone"\n',
    )
    results = simulate.run_scenarios(cib_path, fake_runner, tmp_path)
    assert [r.name for r in results] == ["configuration", "start-up"]
    assert results[1].problems == (
        "start-up: crm_simulate refused the CIB (exit 78, Invalid configuration): cib.xml:9: "
        "element rsc_order: validity error : IDREF attribute first references an unknown ID "
        '"galera-clone"',
    )


def test_a_simulation_without_a_revised_status_is_refused_not_read(tmp_path, fake_runner):
    """Pacemaker 3.0.0's XML of a simulation given events ends before the transition and the
    revised status: reading the status before the events would judge the wrong cluster (a
    start-up with nothing placed passing, a lost node never fenced)."""
    cut_short = (
        '<pacemaker-result api-version="2.38" request="crm_simulate">'
        "<cluster_status><nodes/></cluster_status><modifications/>"
        '<modify_node action="Failing" node="node1"/><status code="0" message="OK"/>'
        "</pacemaker-result>"
    )
    with pytest.raises(SimulationFailed, match="no revised cluster status"):
        parse_simulation(cut_short)
    cib_path = tmp_path / "cib.xml"
    cib_path.write_text(cib_xml(resources=HAPROXY, nodes=TWO_NODES))
    fake_runner.expect(
        events(
            tmp_path,
            "start-up-0.xml",
            "start-up-1-events.xml",
            *("--quorum", "true", "--node-up", "node1", "--node-up", "node2"),
        ),
        stdout=EVENTS_OK,
    )
    fake_runner.expect(argv(tmp_path, "start-up-1-events.xml", "start-up-1.xml"), stdout=cut_short)
    results = simulate.run_scenarios(cib_path, fake_runner, tmp_path)
    assert results[1].problems == ("start-up: crm_simulate printed no revised cluster status",)


def test_a_file_that_is_not_a_cib_raises(tmp_path, fake_runner):
    """Not XML, or XML without <configuration>: CibError, no command run."""
    path = tmp_path / "cib.xml"
    for text in ("not xml", "<cib/>"):
        path.write_text(text)
        with pytest.raises(CibError):
            simulate.run_scenarios(path, fake_runner, tmp_path)
