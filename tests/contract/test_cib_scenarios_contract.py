"""stackha.cib.simulate against the real crm_simulate (no cluster): an OpenStack HA CIB for
three nodes, built here from ``cibadmin --empty``, passes every scenario; the HA Guide's
inverted colocation, fence devices on their own node, a keystone ordered after a galera that
is missing, stopped or promoted on one node only are each caught."""

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cib_builders import meta
from stackha.cib.render import render_cib
from stackha.cib.simulate import run_scenarios
from stackha.cib.site import read_site
from stackha.runner import SubprocessRunner

NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def empty_cib():
    """What Pacemaker here starts a CIB with (its validate-with: pacemaker-3.9 on 2.1.5)."""
    return SubprocessRunner().run(["/usr/sbin/cibadmin", "--empty"], timeout=30, check=True).stdout


def clone(clone_id, primitive, **options):
    return f'<clone id="{clone_id}">{meta(clone_id, **options)}{primitive}</clone>'


def dummy(primitive_id):
    return f'<primitive id="{primitive_id}" class="ocf" provider="heartbeat" type="Dummy"/>'


def vip(vip_id, address):
    return (
        f'<primitive id="{vip_id}" class="ocf" provider="heartbeat" type="IPaddr2">'
        f'<instance_attributes id="{vip_id}-ia"><nvpair id="{vip_id}-ip" name="ip" '
        f'value="{address}"/></instance_attributes></primitive>'
    )


def fence_device(node):
    return (
        f'<primitive id="fence-{node}" class="stonith" type="fence_ipmilan">'
        f'<instance_attributes id="fence-{node}-ia">'
        f'<nvpair id="fence-{node}-hosts" name="pcmk_host_list" value="{node}"/>'
        "</instance_attributes></primitive>"
    )


VIP_WITH_HAPROXY = (
    '<rsc_colocation id="vip-public-with-haproxy" rsc="vip-public" with-rsc="haproxy-clone" '
    'score="INFINITY"/>'
)
# The OpenStack HA Guide's command (pcs constraint colocation add lb-haproxy-clone with vip).
HAPROXY_WITH_VIP = (
    '<rsc_colocation id="haproxy-with-vip-public" rsc="haproxy-clone" with-rsc="vip-public" '
    'score="INFINITY"/>'
)


def openstack_cib(
    empty_cib,
    tmp_path,
    *,
    colocation=VIP_WITH_HAPROXY,
    fence_location_score="-INFINITY",
    with_galera=True,
    galera_options=None,
):
    """The reference shape (openstack-ha.md §1): a public VIP with haproxy-clone, a promotable
    galera-clone with a VIP on a Promoted instance, keystone-clone after galera's promotion
    (interleaved), one fence device per node kept off it."""
    galera_options = {
        "promotable": "true",
        "promoted_max": "3",
        "notify": "true",
        **(galera_options or {}),
    }
    resources = [
        vip("vip-public", "198.51.100.10"),
        clone("haproxy-clone", dummy("haproxy"), interleave="true"),
        clone("keystone-clone", dummy("keystone"), interleave="true"),
        *(fence_device(node) for node in NODES),
    ]
    constraints = [
        colocation,
        '<rsc_order id="vip-public-then-haproxy" first="vip-public" then="haproxy-clone" '
        'kind="Optional"/>',
        '<rsc_order id="galera-then-keystone" first="galera-clone" first-action="promote" '
        'then="keystone-clone" then-action="start" kind="Mandatory"/>',
    ]
    if with_galera:
        # Pacemaker's promotable test agent: crm_simulate runs no agent, any type would do.
        galera = '<primitive id="galera" class="ocf" provider="pacemaker" type="Stateful"/>'
        resources += [clone("galera-clone", galera, **galera_options), vip("vip-db", "192.0.2.11")]
        constraints.append(
            '<rsc_colocation id="vip-db-with-galera-promoted" rsc="vip-db" with-rsc="galera-clone" '
            'with-rsc-role="Promoted" score="INFINITY"/>'
        )
    if fence_location_score is not None:
        constraints += [
            f'<rsc_location id="fence-{node}-location" rsc="fence-{node}" node="{node}" '
            f'score="{fence_location_score}"/>'
            for node in NODES
        ]
    cib = ET.fromstring(empty_cib)
    configuration = cib.find("configuration")
    configuration.find("crm_config").append(
        ET.fromstring(
            '<cluster_property_set id="cib-bootstrap-options"><nvpair '
            'id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="true"/>'
            "</cluster_property_set>"
        )
    )
    for number, node in enumerate(NODES, start=1):
        ET.SubElement(configuration.find("nodes"), "node", id=str(number), uname=node)
    for resource in resources:
        configuration.find("resources").append(ET.fromstring(resource))
    for constraint in constraints:
        configuration.find("constraints").append(ET.fromstring(constraint))
    path = tmp_path / "cib.xml"
    path.write_text(ET.tostring(cib, encoding="unicode"))
    return path


def scenarios(cib_path, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    return {r.name: r for r in run_scenarios(cib_path, SubprocessRunner(), workdir)}


def all_problems(results):
    return [problem for result in results.values() for problem in result.problems]


def test_the_reference_cib_passes_start_up_and_the_loss_of_each_node(empty_cib, tmp_path):
    """No problem anywhere; each scenario settles in two transitions; and the placement is the
    one promised: HAProxy and a Promoted Galera on every node, the VIPs on one."""
    started = time.monotonic()
    results = scenarios(openstack_cib(empty_cib, tmp_path), tmp_path)
    elapsed = time.monotonic() - started

    assert list(results) == ["configuration", "start-up", *(f"{n} lost" for n in NODES)]
    assert all_problems(results) == []
    start_up = results["start-up"]
    assert start_up.placement["haproxy-clone"] == dict.fromkeys(NODES, "Started")
    assert start_up.placement["galera-clone"] == dict.fromkeys(NODES, "Promoted")
    assert start_up.placement["keystone-clone"] == dict.fromkeys(NODES, "Started")
    assert len(start_up.placement["vip-db"]) == 1
    lost = results["node2 lost"]
    assert lost.online_nodes == ("node1", "node3")
    assert set(lost.placement["haproxy-clone"]) == {"node1", "node3"}
    assert all(result.rounds == 2 for name, result in results.items() if name != "configuration")
    # crm_simulate takes some 40 ms a round on a 3-node CIB; generous for a loaded CI runner.
    assert elapsed < 20


def test_the_ha_guide_inverted_colocation_fails_start_up(empty_cib, tmp_path):
    """haproxy-clone colocated with the VIP runs on the VIP's node only."""
    results = scenarios(openstack_cib(empty_cib, tmp_path, colocation=HAPROXY_WITH_VIP), tmp_path)
    [problem] = results["start-up"].problems
    assert problem.startswith("start-up: haproxy-clone runs on node")
    assert "expected on every online node (node1 node2 node3)" in problem
    assert "colocated INFINITY with vip-public (haproxy-with-vip-public)" in problem
    assert all(not result.ok for name, result in results.items() if name.endswith(" lost"))


def test_fence_devices_allowed_on_their_own_node_are_reported(empty_cib, tmp_path):
    """Without a location constraint each device may land on the node it fences."""
    results = scenarios(openstack_cib(empty_cib, tmp_path, fence_location_score=None), tmp_path)
    assert results["configuration"].problems == tuple(
        f"configuration: fence-{node} fences {node} and may run on {node} (no -INFINITY "
        f"location constraint keeps it off {node})"
        for node in NODES
    )


def test_fence_devices_forced_onto_their_own_node_are_reported_where_they_run(empty_cib, tmp_path):
    """A location constraint that puts each device on its own node: it runs there."""
    results = scenarios(
        openstack_cib(empty_cib, tmp_path, fence_location_score="INFINITY"), tmp_path
    )
    assert len(results["configuration"].problems) == 3
    assert results["start-up"].problems == tuple(
        f"start-up: fence-{node} runs on {node}, the node it fences" for node in NODES
    )


def test_a_keystone_ordered_after_a_galera_that_is_not_configured_is_refused(empty_cib, tmp_path):
    """crm_simulate refuses the CIB (the ordering's IDREF names nothing); no node-lost
    scenario runs."""
    results = scenarios(openstack_cib(empty_cib, tmp_path, with_galera=False), tmp_path)
    assert list(results) == ["configuration", "start-up"]
    [problem] = results["start-up"].problems
    assert problem.startswith("start-up: crm_simulate refused the CIB (exit 78")
    assert 'unknown ID "galera-clone"' in problem


def test_a_keystone_ordered_after_a_stopped_galera_never_starts(empty_cib, tmp_path):
    """galera-clone target-role=Stopped: keystone-clone and the database VIP stay down."""
    cib = openstack_cib(empty_cib, tmp_path, galera_options={"target_role": "Stopped"})
    problems = scenarios(cib, tmp_path)["start-up"].problems
    assert problems == (
        "start-up: keystone-clone runs on no node, expected on every online node "
        "(node1 node2 node3): it is ordered after promote galera-clone (galera-then-keystone), "
        "which is Promoted on no node",
        "start-up: vip-db is active on no node, expected on one of node1 node2 node3: it is "
        "colocated INFINITY with Promoted galera-clone (vip-db-with-galera-promoted), which is "
        "Promoted on no node",
    )


def test_a_galera_promoted_on_one_node_leaves_keystone_on_that_node_only(empty_cib, tmp_path):
    """promoted-max=1 is honoured (one Promoted galera), and the interleaved keystone can only
    run beside it: reported in every scenario."""
    cib = openstack_cib(empty_cib, tmp_path, galera_options={"promoted_max": "1"})
    results = scenarios(cib, tmp_path)
    start_up = results["start-up"]
    promoted = [n for n, role in start_up.placement["galera-clone"].items() if role == "Promoted"]
    assert len(promoted) == 1
    assert start_up.problems == (
        f"start-up: keystone-clone runs on {promoted[0]} only, expected on every online node "
        "(node1 node2 node3): it is ordered after promote galera-clone (galera-then-keystone), "
        f"which is Promoted on {promoted[0]} only",
    )
    for node in NODES:
        [problem] = results[f"{node} lost"].problems
        assert problem.startswith(f"{node} lost: keystone-clone runs on ")


def test_the_database_path_through_haproxy_passes_and_keeps_the_apis_everywhere(tmp_path):
    """stackha's own templates with database_path = haproxy (crm-templates/site.example.ini):
    the database VIP runs where an HAProxy runs, and losing a node — the one holding that VIP
    among them — leaves keystone and nova-api on every survivor (their orderings after the VIP
    and Galera are Optional: nothing restarts them)."""
    example = Path(__file__).resolve().parents[2] / "crm-templates" / "site.example.ini"
    path = tmp_path / "cib.xml"
    path.write_text(render_cib(read_site(example.read_text())))
    results = scenarios(path, tmp_path)
    assert all_problems(results) == []
    nodes = ("ctl1", "ctl2", "ctl3")
    for name, result in results.items():
        if name == "configuration":
            continue
        survivors = set(result.online_nodes)
        [holder] = result.placement["vip-database"]
        assert result.placement["haproxy-clone"].get(holder) == "Started", name
        for api in ("keystone-clone", "nova-api-clone"):
            assert set(result.placement[api]) == survivors, (name, api)
    assert list(results) == ["configuration", "start-up", *(f"{n} lost" for n in nodes)]
