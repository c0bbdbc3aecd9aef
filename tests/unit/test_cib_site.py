"""The site description: what it accepts, and every problem of a bad one listed at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from stackha.cib.site import SiteError, read_site

EXAMPLE = Path(__file__).resolve().parents[2] / "crm-templates" / "site.example.ini"

SMALL = """
[cluster]
name = lab
services = haproxy galera
stonith_enabled = false

[node n1]
address = 192.0.2.11/24
[node n2]
address = 192.0.2.12/24

[vip public]
address = 192.0.2.100/24
nic = eth0
"""


def problems_of(text):
    with pytest.raises(SiteError) as caught:
        read_site(text, "site.ini")
    return caught.value.problems


def test_the_example_site_reads():
    site = read_site(EXAMPLE.read_text(), str(EXAMPLE))
    assert site.node_names() == ["ctl1", "ctl2", "ctl3"]
    assert [(v.resource_id, v.serves) for v in site.vips] == [
        ("vip-internal", "haproxy"),
        ("vip-database", "database"),
    ]
    assert site.database_path == "haproxy" and site.database_vip() == site.vips[1]
    assert [(p.name, p.outlets) for p in site.pdus] == [
        ("a", (("ctl1", "1"), ("ctl2", "2"), ("ctl3", "3"))),
        ("b", (("ctl1", "1"), ("ctl2", "2"), ("ctl3", "3"))),
    ]
    assert site.nodes[0].bmc is not None
    assert site.nodes[0].bmc.password_file == "/etc/stackha/fencing/bmc-ctl1.password"
    assert site.runs("keystone") and site.api_services == "pacemaker"


def test_a_small_site_takes_the_defaults():
    site = read_site(SMALL)
    assert site.stonith_enabled is False
    assert site.vips[0].serves == "haproxy"
    assert str(site.vips[0].address) == "192.0.2.100/24"
    assert site.runs("galera") and not site.runs("rabbitmq")


DATABASE_VIP = "\n[vip db]\naddress = 192.0.2.99/24\nnic = eth0\nserves = database\n"


def test_infrastructure_only_leaves_the_api_services_out():
    text = SMALL.replace("services = haproxy galera", "services = haproxy galera keystone")
    text += DATABASE_VIP
    site = read_site(
        text.replace("stonith_enabled = false", "stonith_enabled = false\napi_services = systemd")
    )
    assert "keystone" in site.services and not site.runs("keystone")


def test_every_problem_is_listed_at_once():
    text = """
[cluster]
name = lab
services = haproxy galera memcache

[node n1]
address = 192.0.2.11/24
bmc = 10.0.0.1
bmc_username = admin
bmc_password_file = /etc/stackha/bmc.password

[node n2]
address = 192.0.2.11/24

[vip public]
address = 198.51.100.10/24
nic = eth1

[pdu a]
address = 10.0.0.1
username = apc
password_file = /etc/stackha/pdu.password
outlets = n1:1 n3:3
"""
    assert problems_of(text) == [
        "[cluster]: unknown service 'memcache' (known: haproxy galera rabbitmq memcached "
        "keystone placement-api nova-api glance-api neutron-server cinder-api; an active/passive "
        "service of your own needs a [service NAME] with an agent)",
        "[vip public]: 198.51.100.10 is outside every node's subnet (192.0.2.0/24): no node "
        "could hold it",
        "[pdu a]: outlet 3 powers node 'n3', which has no [node n3]",
        "address 192.0.2.11 is used twice: node n1 and node n2",
        "address 10.0.0.1 is used twice: the BMC of n1 and pdu a",
    ]


def test_a_site_without_nodes_or_cluster_says_both():
    assert problems_of("[vip x]\naddress = 192.0.2.1/24\nnic = eth0\n") == [
        "[cluster] is missing",
        "no [node NAME] section: a cluster needs its nodes",
        "[vip x]: serves 'haproxy', which is not in [cluster] services",
    ]


def test_sections_keys_and_values_are_checked():
    text = """
[cluster]
name = lab
services = haproxy
api_services = containers
database_path = everywhere
colour = blue

[node n1]
address = 192.0.2.11
bmc = not-an-address
bmc_password_file = relative/path

[nodes n2]
address = 192.0.2.12/24

[vip v]
address = 192.0.2.100/24
serves = keystone
"""
    assert problems_of(text) == [
        "[nodes n2]: unknown section (cluster, properties, node, vip, pdu, service)",
        "[cluster]: unknown key 'colour'",
        "[cluster]: api_services = 'containers': pacemaker (the API services are clones in "
        "Pacemaker) or systemd (infrastructure only)",
        "[cluster]: database_path = 'everywhere': haproxy (through HAProxy on a VIP with "
        "serves = database, to one Galera node at a time) or local (each API service to its "
        "own node's Galera)",
        "[node n1]: address '192.0.2.11' needs its prefix length (e.g. /24)",
        "[node n1] bmc: 'not-an-address' is not an IP address",
        "[node n1]: bmc_username is missing",
        "[node n1]: bmc_password_file must be an absolute path (a root-only file on every "
        "node: the password never goes into the CIB)",
        "[vip v]: nic (the interface it goes on) is missing",
        "[vip v]: serves = 'keystone': haproxy, database, galera, or an active/passive service "
        "with a [service NAME] section",
        "stonith_enabled = true but no node has a bmc and there is no [pdu]: nothing could "
        "fence a node",
    ]


def test_a_duplicate_section_is_named_with_its_line():
    assert problems_of(SMALL + "\n[node n1]\naddress = 192.0.2.13/24\n") == [
        "section [node n1] appears twice (line 16)"
    ]


def test_fencing_on_with_nothing_to_fence_with_is_refused():
    text = SMALL.replace("stonith_enabled = false", "stonith_enabled = true")
    assert problems_of(text) == [
        "stonith_enabled = true but no node has a bmc and there is no [pdu]: nothing could "
        "fence a node"
    ]


def test_an_active_passive_service_of_ones_own():
    text = SMALL.replace("services = haproxy galera", "services = haproxy cinder-volume")
    text += "\n[service cinder-volume]\nagent = systemd:cinder-volume\nstart_timeout = 200s\n"
    text += "\n[vip storage]\naddress = 192.0.2.101/24\nnic = eth0\nserves = cinder-volume\n"
    site = read_site(text)
    service = site.active_passive("cinder-volume")
    assert service is not None and service.agent == "systemd:cinder-volume"
    assert service.settings == (("start_timeout", "200s"),)
    assert site.runs("cinder-volume")


def test_the_database_path_and_the_database_vip_must_agree():
    """haproxy (the default) needs one VIP that serves the database, on HAProxy in front of
    Galera; local needs none."""
    apis = SMALL.replace("services = haproxy galera", "services = haproxy galera keystone")
    assert problems_of(apis) == [
        "[cluster]: database_path = haproxy needs a [vip NAME] with serves = database: the "
        "address HAProxy listens on for the API services' database connections (or "
        "database_path = local)"
    ]
    site = read_site(apis + DATABASE_VIP)
    assert site.database_vip().resource_id == "vip-db"
    local = apis.replace("name = lab", "name = lab\ndatabase_path = local")
    assert read_site(local).database_path == "local" and read_site(local).database_vip() is None
    assert problems_of(local + DATABASE_VIP) == [
        "[vip db]: serves = database, but database_path = local: every API service uses its "
        "own node's Galera (set database_path = haproxy, or remove it)"
    ]
    second = DATABASE_VIP.replace("vip db", "vip db2").replace(".99/", ".98/")
    assert problems_of(apis + DATABASE_VIP + second) == [
        "[vip db2]: a second VIP with serves = database (one only)"
    ]
    no_haproxy = apis.replace("services = haproxy galera", "services = galera")
    assert problems_of(no_haproxy + DATABASE_VIP)[1] == (
        "[vip db]: serves database (HAProxy in front of Galera), but haproxy is not in "
        "[cluster] services"
    )
