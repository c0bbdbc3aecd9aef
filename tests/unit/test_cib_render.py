"""The CIB rendered from a site: every building block, the composition, and the problems the
renderer finds. (The rendered CIB against Pacemaker's schema, crm_verify and crm_simulate:
tests/contract/test_cib_templates.py.)"""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from lxml import etree
from stackha.cib.render import RenderError, agent_spec, render_cib
from stackha.cib.site import read_site

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "crm-templates" / "site.example.ini").read_text()
SCHEMA = "pacemaker-3.9"


def rendered(text=EXAMPLE, validate_with=SCHEMA):
    return etree.fromstring(render_cib(read_site(text), validate_with).encode())


def ids(cib, path):
    return [element.get("id") for element in cib.iterfind(path)]


def nvpairs(element, path="instance_attributes/nvpair"):
    return {nvpair.get("name"): nvpair.get("value") for nvpair in element.iterfind(path)}


def test_the_example_composes_every_building_block():
    cib = rendered()
    assert cib.get("validate-with") == SCHEMA
    # fencing first: Pacemaker runs a transition's ready actions in this order (see render.py)
    assert ids(cib, "configuration/resources/*") == [
        "fence-ipmi-ctl1",
        "fence-ipmi-ctl2",
        "fence-ipmi-ctl3",
        "fence-pdu-a",
        "fence-pdu-b",
        "haproxy-clone",
        "galera-clone",
        "rabbitmq-clone",
        "memcached-clone",
        "keystone-clone",
        "placement-api-clone",
        "nova-api-clone",
        "glance-api-clone",
        "neutron-server-clone",
        "cinder-api-clone",
        "vip-internal",
        "vip-database",
    ]
    assert [n.get("uname") for n in cib.iterfind("configuration/nodes/node")] == [
        "ctl1",
        "ctl2",
        "ctl3",
    ]


def test_the_vip_is_colocated_with_the_haproxy_clone_never_the_reverse():
    cib = rendered()
    colocation = cib.find("configuration/constraints/rsc_colocation[@rsc='vip-internal']")
    assert colocation is not None
    assert (colocation.get("with-rsc"), colocation.get("score")) == ("haproxy-clone", "INFINITY")
    assert cib.find("configuration/constraints/rsc_colocation[@rsc='haproxy-clone']") is None
    order = cib.find("configuration/constraints/rsc_order[@then='vip-internal']")
    assert (order.get("first"), order.get("first-action")) == ("haproxy-clone", "start")


def test_the_database_vip_is_on_haproxy_like_every_vip_on_haproxy():
    cib = rendered()
    colocation = cib.find("configuration/constraints/rsc_colocation[@rsc='vip-database']")
    assert (colocation.get("with-rsc"), colocation.get("score")) == ("haproxy-clone", "INFINITY")
    assert colocation.get("with-rsc-role") is None
    order = cib.find("configuration/constraints/rsc_order[@then='vip-database']")
    assert (order.get("first"), order.get("first-action"), order.get("kind")) == (
        "haproxy-clone",
        "start",
        "Mandatory",
    )


def local_writers(site=EXAMPLE):
    site = site.replace("database_path = haproxy", "database_path = local")
    return site.replace("serves = database", "serves = galera")


def test_the_write_vip_follows_one_promoted_galera_and_starts_after_the_promotion():
    cib = rendered(local_writers())
    colocation = cib.find("configuration/constraints/rsc_colocation[@rsc='vip-database']")
    assert (colocation.get("with-rsc"), colocation.get("with-rsc-role")) == (
        "galera-clone",
        "Promoted",
    )
    order = cib.find("configuration/constraints/rsc_order[@then='vip-database']")
    assert (order.get("first"), order.get("first-action")) == ("galera-clone", "promote")


def test_clone_options_are_on_the_clone_and_galera_is_promoted_everywhere():
    cib = rendered()
    galera = cib.find("configuration/resources/clone[@id='galera-clone']")
    assert nvpairs(galera, "meta_attributes/nvpair") == {
        "promotable": "true",
        "promoted-max": "3",
        "notify": "true",
        "interleave": "true",
    }
    assert galera.find("primitive/meta_attributes") is None
    assert nvpairs(galera.find("primitive")) == {"wsrep_cluster_address": "gcomm://ctl1,ctl2,ctl3"}
    rabbitmq = cib.find("configuration/resources/clone[@id='rabbitmq-clone']")
    assert nvpairs(rabbitmq, "meta_attributes/nvpair") == {"notify": "true", "interleave": "true"}


def test_operations_are_the_agents_own_and_the_deep_monitor_needs_credentials():
    cib = rendered()
    keystone = cib.find("configuration/resources/clone/primitive[@id='keystone']")
    spec = agent_spec("keystone")
    advertised = {
        (a.name, f"{a.interval or 0}s", f"{a.timeout}s", str(a.depth or 0))
        for a in spec.actions
        if a.name in ("start", "stop", "monitor")
    }
    configured = {
        (
            op.get("name"),
            op.get("interval"),
            op.get("timeout"),
            nvpairs(op).get("OCF_CHECK_LEVEL", "0"),
        )
        for op in keystone.iterfind("operations/op")
    }
    assert configured == advertised
    without = EXAMPLE.replace("credentials = /etc/keystone/stackha-monitor.credentials", "")
    keystone = rendered(without).find("configuration/resources/clone/primitive[@id='keystone']")
    levels = [nvpairs(op).get("OCF_CHECK_LEVEL") for op in keystone.iterfind("operations/op")]
    assert "20" not in levels and "10" in levels


def api_orders(cib):
    return {
        (o.get("first"), o.get("first-action"), o.get("then"), o.get("kind"))
        for o in cib.iterfind("configuration/constraints/rsc_order")
        if o.get("then", "").endswith("-clone")
    }


def test_through_haproxy_api_clones_start_after_the_database_vip_and_galera_but_never_restart():
    """database_path = haproxy (the default): the APIs do not use their own node's Galera, so
    neither the VIP moving nor a Galera instance demoted restarts them (Optional orderings)."""
    orders = {
        ("vip-database", "start", "keystone-clone", "Optional"),
        ("galera-clone", "promote", "keystone-clone", "Optional"),
        ("memcached-clone", "start", "keystone-clone", "Optional"),
    }
    for api in ("placement-api", "nova-api", "glance-api", "neutron-server", "cinder-api"):
        orders |= {
            ("vip-database", "start", f"{api}-clone", "Optional"),
            ("galera-clone", "promote", f"{api}-clone", "Optional"),
            ("keystone-clone", "start", f"{api}-clone", "Optional"),
        }
    # the RPC users: nova, neutron, cinder; placement and glance send nothing through it
    orders |= {
        ("rabbitmq-clone", "start", f"{api}-clone", "Mandatory")
        for api in ("nova-api", "neutron-server", "cinder-api")
    }
    assert api_orders(rendered()) == orders


def test_with_local_writers_api_clones_wait_for_their_nodes_galera_and_rabbitmq():
    """keystone is not after RabbitMQ: it sends nothing through it, and a Mandatory ordering
    would restart it with its node's RabbitMQ."""
    cib = rendered(local_writers())
    orders = {
        ("galera-clone", "promote", "keystone-clone", "Mandatory"),
        ("memcached-clone", "start", "keystone-clone", "Optional"),
    }
    for api in ("placement-api", "nova-api", "glance-api", "neutron-server", "cinder-api"):
        orders |= {
            ("galera-clone", "promote", f"{api}-clone", "Mandatory"),
            ("keystone-clone", "start", f"{api}-clone", "Optional"),
        }
    orders |= {
        ("rabbitmq-clone", "start", f"{api}-clone", "Mandatory")
        for api in ("nova-api", "neutron-server", "cinder-api")
    }
    assert api_orders(cib) == orders
    for service in ("keystone-clone", "nova-api-clone"):
        clone = cib.find(f"configuration/resources/clone[@id='{service}']")
        assert nvpairs(clone, "meta_attributes/nvpair") == {"interleave": "true"}


def test_memcached_is_an_interleaved_clone_with_every_monitor_its_agent_advertises():
    """No parameter needed (each instance binds its node's own address), and its depth-20
    monitor needs no credentials, unlike the API services'."""
    cib = rendered()
    clone = cib.find("configuration/resources/clone[@id='memcached-clone']")
    assert nvpairs(clone, "meta_attributes/nvpair") == {"interleave": "true"}
    primitive = clone.find("primitive")
    assert (primitive.get("id"), primitive.get("provider"), primitive.get("type")) == (
        "memcached",
        "stackha",
        "memcached",
    )
    assert primitive.find("instance_attributes") is None
    monitors = [
        (op.get("interval"), nvpairs(op).get("OCF_CHECK_LEVEL", "0"))
        for op in primitive.iterfind("operations/op[@name='monitor']")
    ]
    assert monitors == [("10s", "0"), ("30s", "10"), ("60s", "20")]
    assert cib.find("configuration/constraints/rsc_colocation[@rsc='memcached-clone']") is None
    assert cib.find("configuration/constraints/rsc_colocation[@with-rsc='memcached-clone']") is None


def test_keystone_starts_after_memcached_but_a_memcached_restart_never_restarts_it():
    """keystone's cache: ordered at start only (Optional), and only keystone; without memcached
    in the site, no ordering names it."""
    cib = rendered()
    orders = [
        (o.get("id"), o.get("then"), o.get("kind"))
        for o in cib.iterfind("configuration/constraints/rsc_order[@first='memcached-clone']")
    ]
    assert orders == [
        ("order-memcached-clone-keystone-clone-optional", "keystone-clone", "Optional")
    ]
    without = rendered(EXAMPLE.replace("rabbitmq memcached keystone", "rabbitmq keystone"))
    assert "memcached-clone" not in ids(without, "configuration/resources/*")
    assert without.find("configuration/constraints/rsc_order[@first='memcached-clone']") is None


def test_memcached_takes_its_agents_parameters_and_refuses_others():
    site = EXAMPLE + "\n[service memcached]\nmemory = 256\nmemcache_size = 1\n"
    with pytest.raises(RenderError) as raised:
        rendered(site)
    assert raised.value.problems == [
        "[service memcached]: memcache_size is not a parameter of ocf:stackha:memcached (it has: "
        "address binary check_timeout log_file max_connections memory pidfile port user)"
    ]
    cib = rendered(site.replace("memcache_size = 1\n", ""))
    primitive = cib.find("configuration/resources/clone/primitive[@id='memcached']")
    assert nvpairs(primitive) == {"memory": "256"}


def test_infrastructure_only_renders_no_api_service():
    cib = rendered(EXAMPLE.replace("api_services = pacemaker", "api_services = systemd"))
    assert "keystone-clone" not in ids(cib, "configuration/resources/*")
    assert not [
        o for o in cib.iterfind("configuration/constraints/rsc_order") if "nova" in o.get("id")
    ]


def test_fencing_one_ipmi_device_per_node_never_on_it_and_pdus_as_level_two():
    cib = rendered()
    device = cib.find("configuration/resources/primitive[@id='fence-ipmi-ctl2']")
    assert (device.get("class"), device.get("type")) == ("stonith", "fence_stackha_ipmi")
    assert nvpairs(device) == {
        "ip": "10.0.0.102",
        "ipport": "623",
        "lanplus": "1",
        "username": "admin",
        "password_script": "/bin/cat /etc/stackha/fencing/bmc-ctl2.password",
        "pcmk_host_list": "ctl2",
    }
    avoid = cib.find("configuration/constraints/rsc_location[@rsc='fence-ipmi-ctl2']")
    assert (avoid.get("node"), avoid.get("score")) == ("ctl2", "-INFINITY")
    pdu = cib.find("configuration/resources/primitive[@id='fence-pdu-a']")
    assert nvpairs(pdu)["pcmk_host_map"] == "ctl1:1;ctl2:2;ctl3:3"
    assert nvpairs(pdu)["ssh"] == "1" and "ipport" not in nvpairs(pdu)
    levels = [
        (level.get("target"), level.get("index"), level.get("devices"))
        for level in cib.iterfind("configuration/fencing-topology/fencing-level")
    ]
    assert levels[:2] == [
        ("ctl1", "1", "fence-ipmi-ctl1"),
        ("ctl1", "2", "fence-pdu-a,fence-pdu-b"),
    ]
    assert len(levels) == 6


def test_no_password_reaches_the_cib():
    cib = rendered()
    names = {nvpair.get("name") for nvpair in cib.iter("nvpair")}
    assert "password_script" in names
    assert not {"password", "passwd"} & names


def test_an_active_passive_service_gets_its_vip_and_settings():
    site = EXAMPLE.replace(
        "neutron-server cinder-api\n",
        "neutron-server cinder-api cinder-volume\n",
    )
    site += (
        "\n[service cinder-volume]\nagent = systemd:cinder-volume\nstart_timeout = 200s\n"
        "\n[vip storage]\naddress = 192.0.2.20/24\nnic = eth1\nserves = cinder-volume\n"
    )
    cib = rendered(site)
    primitive = cib.find("configuration/resources/primitive[@id='cinder-volume']")
    assert (primitive.get("class"), primitive.get("provider"), primitive.get("type")) == (
        "systemd",
        None,
        "cinder-volume",
    )
    start = primitive.find("operations/op[@name='start']")
    assert start.get("timeout") == "200s"
    colocation = cib.find("configuration/constraints/rsc_colocation[@rsc='vip-storage']")
    assert colocation.get("with-rsc") == "cinder-volume"


def test_unknown_agent_parameters_are_refused_all_at_once():
    site = EXAMPLE + "\n[service galera]\nwsrep_cluster_adress = gcomm://x\n"
    site = site.replace("config = /etc/haproxy/haproxy.cfg", "config_file = /etc/haproxy/x.cfg")
    with pytest.raises(RenderError) as caught:
        render_cib(read_site(site), SCHEMA)
    assert [p.split(" (it has")[0] for p in caught.value.problems] == [
        "[service haproxy]: config_file is not a parameter of ocf:stackha:haproxy",
        "[service galera]: wsrep_cluster_adress is not a parameter of ocf:stackha:galera",
    ]


def test_a_schema_older_than_the_role_names_is_refused():
    with pytest.raises(RenderError, match="pacemaker-3.6 is too old"):
        render_cib(read_site(EXAMPLE), "pacemaker-3.6")
    with pytest.raises(RenderError, match="not a Pacemaker schema name"):
        render_cib(read_site(EXAMPLE), "3.9")


def test_values_are_escaped():
    site = EXAMPLE.replace("config = /etc/haproxy/haproxy.cfg", 'config = /etc/a"b<c>&.cfg')
    cib = rendered(site)
    haproxy = cib.find("configuration/resources/clone/primitive[@id='haproxy']")
    assert nvpairs(haproxy)["config"] == '/etc/a"b<c>&.cfg'


def test_every_template_and_agent_is_installed_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    data = setup["options.data_files"]
    templates = sorted(data["share/stackha/crm-templates"].split())
    assert templates == sorted(
        f"crm-templates/{p.name}" for p in (ROOT / "crm-templates").iterdir() if p.is_file()
    )
    # a glob (setuptools >= 62.3): a new agent is its declaration, not a line here too
    agents = sorted(
        str(p.relative_to(ROOT)) for g in data["share/stackha/agents"].split() for p in ROOT.glob(g)
    )
    assert agents == sorted(f"agents/{p.name}" for p in (ROOT / "agents").iterdir() if p.is_file())
