"""stackha.cib.model: a CIB read into records the way Pacemaker resolves it — references,
templates, tags, resource sets, rules, both promotable forms, both role vocabularies."""

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from cib_builders import (
    CONTROLLER_NODES,
    GALERA,
    HAPROXY,
    KEYSTONE,
    KEYSTONE_AFTER_GALERA,
    VIP,
    cib_xml,
    clone,
    configuration,
    meta,
    primitive,
)
from stackha.cib.model import (
    CibError,
    Resource,
    fence_targets,
    host_list_targets,
    host_map_targets,
    parse_configuration,
    read_cib,
    read_configuration,
)
from stackha.pacemaker.values import INFINITY

# --- resources and their attributes ---------------------------------------------------------


def test_attribute_sets_and_nvpairs_given_by_id_ref_are_the_referenced_ones():
    """An id-ref'd meta_attributes, instance_attributes and nvpair read as the element they
    name; a primitive's own value still comes before a referenced set's."""
    resources = (
        clone("keystone-clone", "keystone", clone_max="2", interleave="true")
        + '<clone id="nova-api-clone"><meta_attributes id-ref="keystone-clone-meta"/>'
        '<primitive id="nova-api" class="ocf" provider="stackha" type="nova-api"/></clone>'
        '<primitive id="fence-a" class="stonith" type="fence_stackha_pdu">'
        '<instance_attributes id="fence-a-ia">'
        '<nvpair id="fence-a-ip" name="ip" value="10.0.0.99"/>'
        '<nvpair id="fence-a-map" name="pcmk_host_map" value="node1:1;node2:2"/>'
        "</instance_attributes></primitive>"
        '<primitive id="fence-b" class="stonith" type="fence_stackha_pdu">'
        '<instance_attributes id="fence-b-ia"><nvpair id="fence-b-ip" name="ip" value="10.0.0.98"/>'
        '<nvpair id-ref="fence-a-map"/></instance_attributes>'
        '<instance_attributes id-ref="fence-a-ia"/></primitive>'
    )
    config = configuration(resources=resources)
    assert config.meta("nova-api", "clone-max") == "2"
    assert config.meta_number("nova-api-clone", ("clone-max",), 0) == 2
    assert dict(config.resources["fence-b"].params) == {
        "ip": "10.0.0.98",
        "pcmk_host_map": "node1:1;node2:2",
    }


def test_a_set_with_a_rule_is_left_out_and_the_first_value_wins():
    """Attribute sets conditional on a rule cannot be resolved offline; of two plain sets
    naming one attribute, the first counts (Pacemaker's order for equal scores)."""
    resources = (
        '<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">'
        '<instance_attributes id="vip-night"><rule id="night" score="0">'
        '<date_expression id="night-d" operation="gt" start="2030-01-01"/></rule>'
        '<nvpair id="vip-night-ip" name="ip" value="192.0.2.99"/></instance_attributes>'
        '<instance_attributes id="vip-1"><nvpair id="vip-1-ip" name="ip" value="192.0.2.10"/>'
        "</instance_attributes>"
        '<instance_attributes id="vip-2"><nvpair id="vip-2-ip" name="ip" value="192.0.2.20"/>'
        "</instance_attributes></primitive>"
    )
    assert configuration(resources=resources).resources["vip"].params["ip"] == "192.0.2.10"


def test_a_primitive_made_from_a_template_takes_its_agent_and_attributes():
    """class/provider/type and attribute sets come from the template; the primitive's own
    attributes win; a constraint naming the template applies to its primitives."""
    resources = (
        '<template id="api" class="ocf" provider="stackha" type="keystone">'
        '<instance_attributes id="api-ia"><nvpair id="api-port" name="port" value="5000"/>'
        '<nvpair id="api-workers" name="workers" value="4"/></instance_attributes>'
        '<meta_attributes id="api-meta"><nvpair id="api-stick" name="resource-stickiness" '
        'value="10"/></meta_attributes></template>'
        '<primitive id="keystone" template="api"><instance_attributes id="ks-ia">'
        '<nvpair id="ks-workers" name="workers" value="8"/></instance_attributes></primitive>'
    )
    ban = '<rsc_location id="api-off-3" rsc="api" node="node3" score="-INFINITY"/>'
    config = configuration(resources=resources, constraints=ban)
    keystone = config.resources["keystone"]
    assert (keystone.agent, keystone.template) == ("ocf:stackha:keystone", "api")
    assert dict(keystone.params) == {"port": "5000", "workers": "8"}
    assert keystone.meta["resource-stickiness"] == "10"
    assert config.allowed_nodes("keystone") == {"node1", "node2"}


def test_both_promotable_forms_are_promotable_clones():
    """Pacemaker 2.0's <master> (gone in 3.0) and <clone> with promotable=true (the only form
    of 3.0) read alike."""
    legacy = (
        f'<master id="db-master">{meta("db-master", master_max="3")}'
        '<primitive id="db" class="ocf" provider="heartbeat" type="galera"/></master>'
    )
    config = configuration(resources=legacy + GALERA + HAPROXY)
    assert [(c.id, c.promotable) for c in config.clones()] == [
        ("db-master", True),
        ("galera-clone", True),
        ("haproxy-clone", False),
    ]
    assert config.clone_of("db").id == "db-master"
    assert config.resources["db-master"].children == ("db",)


def test_a_bundle_and_its_primitive_are_read():
    """A bundle's primitive belongs to the bundle (its parameters are there to read)."""
    bundle = (
        '<bundle id="galera-bundle"><podman image="galera:latest" replicas="3"/>'
        '<primitive id="galera" class="ocf" provider="heartbeat" type="galera">'
        '<instance_attributes id="g-ia"><nvpair id="g-addr" name="wsrep_cluster_address" '
        'value="gcomm://a,b,c"/></instance_attributes></primitive></bundle>'
    )
    config = configuration(resources=bundle + VIP)
    assert config.resources["galera-bundle"].kind == "bundle"
    assert config.resources["galera"].parent == "galera-bundle"
    assert config.resources["galera"].params["wsrep_cluster_address"] == "gcomm://a,b,c"
    assert config.is_in_bundle("galera") and not config.is_in_bundle("vip-public")


def test_a_resource_default_target_role_yields_to_the_resources_own():
    """rsc_defaults target-role=Stopped does not stop a resource that says Started."""
    defaults = (
        '<rsc_defaults><meta_attributes id="d"><nvpair id="d-t" name="target-role" '
        'value="Stopped"/></meta_attributes></rsc_defaults>'
    )
    config = configuration(resources=primitive("vip", target_role="Started"), extra=defaults)
    assert not config.is_stopped_by_configuration("vip")
    assert configuration(resources=primitive("vip"), extra=defaults).is_stopped_by_configuration(
        "vip"
    )


def test_the_records_cannot_be_changed():
    """Records are frozen, and their attribute mappings read-only."""
    config = configuration(resources=HAPROXY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.resources["haproxy-clone"].kind = "group"
    with pytest.raises(TypeError):
        config.resources["haproxy-clone"].meta["interleave"] = "false"
    with pytest.raises(TypeError):
        config.resources["nova"] = config.resources["haproxy"]


# --- nodes, properties, fencing -------------------------------------------------------------


def test_nodes_properties_and_fencing_levels_are_read():
    """Every <node> with its type (members are where resources go), the cluster's name from
    an id-ref'd property set, and fencing levels by node, pattern and attribute."""
    nodes = (
        '<node id="1" uname="node1"><instance_attributes id="n1">'
        '<nvpair id="n1-rack" name="rack" value="r1"/></instance_attributes></node>'
        '<node id="2" uname="node2" type="member"/>'
        '<node id="compute-0" uname="compute-0" type="remote"/>'
    )
    topology = (
        '<crm_config><cluster_property_set id-ref="shared-options"/></crm_config>'
        '<fencing-topology><fencing-level id="l1" index="1" target="node1" devices="ipmi1"/>'
        '<fencing-level id="l2" index="2" target-pattern="node.*" devices="pdu-a,pdu-b"/>'
        '<fencing-level id="l3" index="1" target-attribute="rack" target-value="r1" '
        'devices="pdu-a"/></fencing-topology>'
    )
    options = '<nvpair id="o-name" name="cluster-name" value="openstack"/>'
    text = cib_xml(nodes=nodes, extra=topology).replace(
        '<cluster_property_set id="options">',
        f'<cluster_property_set id="shared-options">{options}',
    )
    config = parse_configuration(text)
    assert [(n.name, n.type, n.is_member) for n in config.nodes] == [
        ("node1", "member", True),
        ("node2", "member", True),
        ("compute-0", "remote", False),
    ]
    assert config.node_names == ("node1", "node2")
    assert config.nodes[0].attributes == {"rack": "r1"}
    assert config.cluster_name == "openstack"
    assert [(lv.target, lv.target_kind, lv.index, lv.devices) for lv in config.fencing_levels] == [
        ("node1", "node", 1, ("ipmi1",)),
        ("node.*", "pattern", 2, ("pdu-a", "pdu-b")),
        ("rack=r1", "attribute", 1, ("pdu-a",)),
    ]


def test_fence_targets_come_from_the_host_list_and_the_host_map():
    """pcmk_host_list is split on spaces, commas and semicolons; pcmk_host_map gives node:port
    (or node=port) entries, a comma separating one node's ports; order kept, each once."""
    listed = {"pcmk_host_list": "n1, n2;n3 n1"}
    mapped = {"pcmk_host_map": "n1:1;n2=2,3 n3:4"}
    assert host_list_targets(listed) == ("n1", "n2", "n3")
    assert host_map_targets(mapped) == ("n1", "n2", "n3")
    both = Resource("f", "primitive", None, (), {}, {**mapped, "pcmk_host_list": "n4"})
    assert fence_targets(both) == ("n4", "n1", "n2", "n3")
    assert fence_targets(Resource("f", "primitive", None, (), {}, {})) is None


def test_stonith_devices_are_the_stonith_primitives():
    """A stonith-class primitive is a fence device, with its agent as crm_mon names it."""
    device = (
        '<primitive id="fence-node1" class="stonith" type="fence_ipmilan">'
        '<instance_attributes id="f-ia"><nvpair id="f-h" name="pcmk_host_list" value="node1"/>'
        "</instance_attributes></primitive>"
    )
    config = configuration(resources=device + VIP)
    assert [(d.id, d.agent) for d in config.stonith_devices()] == [
        ("fence-node1", "stonith:fence_ipmilan")
    ]


# --- constraints ----------------------------------------------------------------------------


def test_an_opt_in_cluster_allows_only_the_nodes_a_constraint_names():
    """symmetric-cluster=false: a score of 0 allows a node, no constraint does not."""
    config = configuration(
        resources=VIP,
        properties='<nvpair id="o-sym" name="symmetric-cluster" value="false"/>',
        constraints='<rsc_location id="on-1" rsc="vip-public" node="node1" score="0"/>',
    )
    assert config.allowed_nodes("vip-public") == {"node1"}


def test_a_node_attribute_rule_given_by_id_ref_is_evaluated_for_each_node():
    """The TripleO role-attribute rule, referenced from a second constraint: the clone and its
    primitive are allowed only where the attribute is true (compared case-insensitively)."""
    rules = (
        '<rsc_location id="vip-on-controllers" rsc="vip-public" resource-discovery="exclusive">'
        '<rule id="controllers" score="0">'
        '<expression id="controllers-expr" attribute="osp-controller" operation="eq" '
        'value="true"/></rule></rsc_location>'
        '<rsc_location id="haproxy-on-controllers" rsc="haproxy-clone" '
        'resource-discovery="exclusive"><rule id-ref="controllers"/></rsc_location>'
    )
    config = configuration(resources=VIP + HAPROXY, constraints=rules, nodes=CONTROLLER_NODES)
    assert config.allowed_nodes("haproxy-clone") == {"node1", "node2"}
    assert config.allowed_nodes("haproxy") == {"node1", "node2"}
    assert config.allowed_nodes("vip-public") == {"node1", "node2"}


def test_a_rule_on_a_date_makes_where_a_resource_may_run_undecidable():
    """A date cannot be evaluated offline: allowed_nodes says so with None, and why."""
    rule = (
        '<rsc_location id="office-hours" rsc="haproxy-clone"><rule id="r" score="-INFINITY">'
        '<date_expression id="d" operation="gt" start="2030-01-01"/></rule></rsc_location>'
    )
    config = configuration(resources=HAPROXY, constraints=rule)
    assert config.allowed_nodes("haproxy") is None
    assert "office-hours" in config.undecidable["haproxy-clone"]


def test_location_resource_sets_by_id_ref_and_tags_name_every_member():
    """A location on a resource set referenced from an order, and one on a tag, apply to
    each resource they name; a set's legacy role Master reads as Promoted."""
    constraints = (
        '<rsc_order id="o"><resource_set id="apis"><resource_ref id="keystone-clone"/>'
        '<resource_ref id="haproxy-clone"/></resource_set></rsc_order>'
        '<rsc_location id="apis-off-3" node="node3" score="-INFINITY">'
        '<resource_set id-ref="apis"/></rsc_location>'
        '<rsc_location id="db-not-promoted-on-2" node="node2" score="-INFINITY">'
        '<resource_set id="db" role="Master"><resource_ref id="galera-clone"/></resource_set>'
        "</rsc_location>"
        '<rsc_location id="tagged-off-1" rsc="edge" node="node1" score="-INFINITY"/>'
    )
    tags = '<tags><tag id="edge"><obj_ref id="vip-public"/></tag></tags>'
    config = configuration(
        resources=KEYSTONE + HAPROXY + GALERA + VIP, constraints=constraints, extra=tags
    )
    assert config.allowed_nodes("keystone-clone") == {"node1", "node2"}
    assert config.allowed_nodes("haproxy") == {"node1", "node2"}
    assert config.allowed_nodes("vip-public") == {"node2", "node3"}
    assert config.allowed_nodes("galera-clone") == {"node1", "node2", "node3"}
    assert config.promotion_bans("galera") == {"node2"}


def test_colocation_sets_are_read_as_pacemaker_reads_them():
    """In a set each member goes with the one before; between sets, the first of the earlier
    set with the last of the later (Pacemaker 2.1 pcmk__unpack_colocation)."""
    constraint = (
        '<rsc_colocation id="chain" score="INFINITY">'
        '<resource_set id="chain-1"><resource_ref id="a"/><resource_ref id="b"/>'
        '<resource_ref id="c"/></resource_set>'
        '<resource_set id="chain-2"><resource_ref id="d"/><resource_ref id="e"/>'
        "</resource_set></rsc_colocation>"
    )
    config = configuration(resources="".join(primitive(r) for r in "abcde"), constraints=constraint)
    pairs = {(c.rsc, c.with_rsc) for c in config.colocations}
    assert pairs == {("b", "a"), ("c", "b"), ("e", "d"), ("a", "e")}


def test_colocation_roles_of_either_vocabulary_and_sets_by_id_ref_are_read():
    """rsc-role/with-rsc-role Slave and Master read as Unpromoted and Promoted, and a set given
    by id-ref (defined in an order) is the set it names, with its role."""
    constraints = (
        '<rsc_colocation id="vip-with-primary" rsc="vip-public" with-rsc="galera-clone" '
        'with-rsc-role="Master" score="INFINITY"/>'
        '<rsc_colocation id="ks-on-replica" rsc="keystone-clone" rsc-role="Started" '
        'with-rsc="galera-clone" with-rsc-role="Slave" score="500"/>'
        '<rsc_order id="o"><resource_set id="front" role="Promoted">'
        '<resource_ref id="galera-clone"/></resource_set></rsc_order>'
        '<rsc_colocation id="set-pair" score="INFINITY"><resource_set id-ref="front"/>'
        '<resource_set id="back"><resource_ref id="haproxy-clone"/></resource_set>'
        "</rsc_colocation>"
    )
    config = configuration(resources=VIP + GALERA + KEYSTONE + HAPROXY, constraints=constraints)
    assert [
        (c.id, c.rsc, c.rsc_role, c.with_rsc, c.with_role, c.score) for c in config.colocations
    ] == [
        ("vip-with-primary", "vip-public", "Started", "galera-clone", "Promoted", INFINITY),
        ("ks-on-replica", "keystone-clone", "Started", "galera-clone", "Unpromoted", 500),
        ("set-pair", "galera-clone", "Promoted", "haproxy-clone", "Started", INFINITY),
    ]


def test_optional_orderings_and_their_legacy_score_form_are_not_mandatory():
    """kind=Optional, or score=0 before kind existed, orders nothing that must hold."""
    optional = KEYSTONE_AFTER_GALERA.replace('kind="Mandatory"', 'kind="Optional"')
    legacy = KEYSTONE_AFTER_GALERA.replace('kind="Mandatory"', 'score="0"')
    for constraint in (optional, legacy):
        config = configuration(resources=GALERA + KEYSTONE, constraints=constraint)
        assert [o.is_mandatory for o in config.orderings] == [False]
    config = configuration(resources=GALERA + KEYSTONE, constraints=KEYSTONE_AFTER_GALERA)
    assert [o.is_mandatory for o in config.orderings] == [True]


def test_then_action_defaults_to_the_first_action():
    """<rsc_order first-action="promote"> without then-action promotes "then" after it."""
    constraint = '<rsc_order id="o" first="galera-clone" first-action="promote" then="vip-db"/>'
    config = configuration(resources=GALERA + primitive("vip-db"), constraints=constraint)
    assert [(o.first_action, o.then_action, o.is_mandatory) for o in config.orderings] == [
        ("promote", "promote", True)
    ]


def test_order_sets_are_read_as_pacemaker_reads_them():
    """The reference's two-set ordering: each of an unordered set before the first of a
    sequential one, whose members follow each other; a set by id-ref brings its action."""
    constraint = (
        '<rsc_order id="infra-then-api">'
        '<resource_set id="s1" sequential="false"><resource_ref id="haproxy-clone"/>'
        '<resource_ref id="memcached-clone"/></resource_set>'
        '<resource_set id="s2" sequential="true"><resource_ref id="keystone-clone"/>'
        '<resource_ref id="nova-clone"/></resource_set></rsc_order>'
        '<rsc_order id="db-then-api"><resource_set id="db" action="promote">'
        '<resource_ref id="galera-clone"/></resource_set><resource_set id-ref="s2"/></rsc_order>'
    )
    resources = (
        HAPROXY
        + KEYSTONE
        + GALERA
        + clone("memcached-clone", "memcached")
        + clone("nova-clone", "nova")
    )
    config = configuration(resources=resources, constraints=constraint)
    assert [(o.id, o.first, o.first_action, o.then, o.then_action) for o in config.orderings] == [
        ("infra-then-api", "keystone-clone", "start", "nova-clone", "start"),
        ("infra-then-api", "haproxy-clone", "start", "keystone-clone", "start"),
        ("infra-then-api", "memcached-clone", "start", "keystone-clone", "start"),
        ("db-then-api", "keystone-clone", "start", "nova-clone", "start"),
        ("db-then-api", "galera-clone", "promote", "keystone-clone", "start"),
    ]


def test_a_constraint_naming_no_resource_is_noted():
    """crm_simulate refuses such a CIB; the model notes it and makes nothing of it."""
    config = configuration(resources=VIP, constraints=KEYSTONE_AFTER_GALERA)
    assert config.orderings == ()
    assert "constraint galera-then-keystone names galera-clone, which is not a resource" in (
        config.notes
    )


# --- reading --------------------------------------------------------------------------------


def test_a_configuration_is_read_from_a_cib_or_from_its_configuration_alone():
    """cibadmin --scope configuration prints <configuration>; a file holds a <cib>: both read
    alike, and only the configuration's ids are referred to (a status id is not)."""
    resource = (
        '<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">'
        '<meta_attributes id-ref="shared"/></primitive>'
    )
    status = (
        '<node_state id="shared"><nvpair id="s" name="target-role" value="Stopped"/></node_state>'
    )
    text = cib_xml(resources=resource, status=status)
    whole = parse_configuration(text)
    section = read_configuration(ET.fromstring(text).find("configuration"))
    assert whole == section
    assert whole.resources["vip"].agent == "ocf:heartbeat:IPaddr2"
    assert whole.resources["vip"].meta == {}


def test_what_is_not_a_configuration_is_refused(tmp_path):
    """Not XML, or XML without a <configuration>: CibError saying what was found."""
    with pytest.raises(CibError, match="no XML"):
        parse_configuration("Could not connect to the CIB")
    with pytest.raises(CibError, match="found <resources>"):
        parse_configuration("<resources/>")
    path = tmp_path / "cib.xml"
    path.write_text("<configuration/>")
    with pytest.raises(CibError, match="is not a CIB"):
        read_cib(path)
    path.write_text(cib_xml())
    assert read_cib(path).tag == "cib"
