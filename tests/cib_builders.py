"""Hand-made CIB XML for the unit tests of stackha.cib.model and the scenario checks: a
three-node CIB around given resources and constraints, and the resources they are made of."""

from __future__ import annotations

from stackha.cib.model import parse_configuration

NODES = ("node1", "node2", "node3")
# TripleO's role attribute: node1 and node2 are controllers (the value in either case), node3
# has no role.
CONTROLLER_NODES = (
    '<node id="1" uname="node1"><instance_attributes id="n1">'
    '<nvpair id="n1-r" name="osp-controller" value="true"/></instance_attributes></node>'
    '<node id="2" uname="node2"><instance_attributes id="n2">'
    '<nvpair id="n2-r" name="osp-controller" value="TRUE"/></instance_attributes></node>'
    '<node id="3" uname="node3"/>'
)


def cib_xml(resources="", constraints="", properties="", nodes=None, status="", extra=""):
    """A <cib> of pacemaker-3.9 (Pacemaker 2.1.5) with node1..node3 unless ``nodes`` is given;
    ``extra`` is more of <configuration> (rsc_defaults, tags, fencing-topology)."""
    nodes = nodes or "".join(f'<node id="{n}" uname="node{n}"/>' for n in range(1, len(NODES) + 1))
    return (
        '<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">'
        "<configuration>"
        f'<crm_config><cluster_property_set id="options">{properties}'
        "</cluster_property_set></crm_config>"
        f"<nodes>{nodes}</nodes>"
        f"<resources>{resources}</resources>"
        f"<constraints>{constraints}</constraints>{extra}"
        f"</configuration><status>{status}</status></cib>"
    )


def configuration(**parts):
    """The model of cib_xml(**parts)."""
    return parse_configuration(cib_xml(**parts))


def nvpairs(owner, **values):
    """nvpairs named after the keywords (an underscore stands for a dash)."""
    return "".join(
        f'<nvpair id="{owner}-{name}" name="{name.replace("_", "-")}" value="{value}"/>'
        for name, value in values.items()
    )


def meta(owner, **values):
    return f'<meta_attributes id="{owner}-meta">{nvpairs(owner, **values)}</meta_attributes>'


def clone(clone_id, primitive_id, **options):
    return (
        f'<clone id="{clone_id}">{meta(clone_id, **options)}'
        f'<primitive id="{primitive_id}" class="ocf" provider="heartbeat" type="Dummy"/>'
        "</clone>"
    )


def primitive(primitive_id, **options):
    return (
        f'<primitive id="{primitive_id}" class="ocf" provider="heartbeat" type="IPaddr2">'
        f"{meta(primitive_id, **options)}</primitive>"
    )


def fence_device(device_id, **params):
    pairs = "".join(
        f'<nvpair id="{device_id}-{name}" name="{name}" value="{value}"/>'
        for name, value in params.items()
    )
    return (
        f'<primitive id="{device_id}" class="stonith" type="fence_ipmilan">'
        f'<instance_attributes id="{device_id}-ia">{pairs}</instance_attributes></primitive>'
    )


# The pieces of an OpenStack control plane the tests combine.
HAPROXY = clone("haproxy-clone", "haproxy", interleave="true")
VIP = primitive("vip-public")
GALERA = clone("galera-clone", "galera", promotable="true", promoted_max="3", notify="true")
KEYSTONE = clone("keystone-clone", "keystone", interleave="true")
VIP_WITH_HAPROXY = (
    '<rsc_colocation id="vip-with-haproxy" rsc="vip-public" with-rsc="haproxy-clone" '
    'score="INFINITY"/>'
)
HAPROXY_WITH_VIP = (
    '<rsc_colocation id="haproxy-with-vip" rsc="haproxy-clone" with-rsc="vip-public" '
    'score="INFINITY"/>'
)
KEYSTONE_AFTER_GALERA = (
    '<rsc_order id="galera-then-keystone" first="galera-clone" first-action="promote" '
    'then="keystone-clone" then-action="start" kind="Mandatory"/>'
)
