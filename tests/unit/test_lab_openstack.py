"""What stackha.lab.openstack writes into the lab's nodes, and the pcs commands it gives, checked
without a lab. (The lab itself ran it: see the module's docstring.)"""

from __future__ import annotations

import configparser
import json

import pytest
from fakes import FakeProcessTable, FakeRunner
from stackha import http_client
from stackha.lab import openstack
from stackha.lab.lab import HAPROXY_CONFIG, Lab, LabState, plan
from stackha.lab.namespaces import LabError
from stackha.lab.node import read_sysctls
from stackha.services import api_catalog as catalog
from stackha.services import openstack_api as api

DEBIAN_KEYSTONE_INI = """[uwsgi]
# This avoids error 104: "Connection reset by peer"
rem-header = Content-Length
master = true
plugins = python3,apparmor
apparmor-profile = keystone
processes = 8
threads = 32
uid = keystone
wsgi-file = /usr/bin/keystone-wsgi-public
#http-socket = :5000
"""
BACKENDS = [("node1", "192.0.2.11"), ("node2", "192.0.2.12"), ("node3", "192.0.2.13")]


def test_the_uwsgi_ini_is_trimmed_for_two_cores_and_keeps_the_rest():
    """processes/threads set, AppArmor gone, rem-header and the commented socket kept."""
    text = openstack.trimmed_uwsgi_ini(DEBIAN_KEYSTONE_INI, processes=2, threads=2)
    lines = text.splitlines()
    assert "processes = 2" in lines and "threads = 2" in lines
    assert "plugins = python3" in lines
    assert not any("apparmor" in line for line in lines if not line.startswith("#"))
    assert "rem-header = Content-Length" in lines and "#http-socket = :5000" in lines
    parsed = api.parse_uwsgi_ini(text, "/etc/keystone/keystone-uwsgi.ini", "192.0.2.11:5000")
    assert (parsed.processes, parsed.threads, parsed.plugins) == (2, 2, ("python3",))
    assert not parsed.http_listener.from_file  # the agent's --http-socket is the one


def test_an_ini_that_binds_a_socket_itself_is_refused():
    with pytest.raises(LabError, match="binds http-socket = :5000"):
        openstack.trimmed_uwsgi_ini("[uwsgi]\nhttp-socket = :5000\n", 2, 1)


def test_settings_replace_their_options_and_a_pid_file_is_refused():
    """The test sandbox's logto and chdir take Debian's place; the agent keeps the pid file."""
    ini = (
        DEBIAN_KEYSTONE_INI + "logto = /var/log/keystone/keystone.log\nchdir = /var/lib/keystone\n"
    )
    text = openstack.trimmed_uwsgi_ini(ini, 2, 1, {"logto": "/tmp/k/uwsgi.log", "chdir": "/tmp/k"})
    parsed = api.parse_uwsgi_ini(text, "/tmp/k/keystone-uwsgi.ini", "127.0.0.1:5000")
    assert (parsed.logto, parsed.chdir, parsed.threads) == ("/tmp/k/uwsgi.log", "/tmp/k", 1)
    with pytest.raises(LabError, match="pidfile = /run/k.pid"):
        openstack.trimmed_uwsgi_ini("[uwsgi]\npidfile = /run/k.pid\n", 2, 1)


PASSWORDS = {f"{service.name}_db": service.name[0] * 32 for service in catalog.SERVICES}


CACHE = "192.0.2.11:11211,192.0.2.12:11211"


def config(service, node="node2", address="192.0.2.12", database_host="127.0.0.1", **passwords):
    return parsed(
        openstack.service_config(
            service, node, address, "192.0.2.100", {**PASSWORDS, **passwords}, database_host, CACHE
        )
    )


def test_the_database_sql_creates_everything_and_sets_the_passwords_again():
    sql = openstack.database_sql(PASSWORDS)
    for database in ("keystone", "nova_api", "nova", "nova_cell0"):
        assert f"CREATE DATABASE IF NOT EXISTS {database};" in sql
    assert f"ALTER USER 'keystone'@'%' IDENTIFIED BY '{'k' * 32}';" in sql
    assert "GRANT ALL PRIVILEGES ON nova_cell0.* TO 'nova'@'%';" in sql


def parsed(text):
    config = configparser.RawConfigParser(strict=False, interpolation=None)
    config.read_string(text)
    return config


def test_services_use_their_own_nodes_galera_through_loopback():
    """The cell mappings nova stores are read on every node: 127.0.0.1 means its own Galera."""
    keystone = config(catalog.KEYSTONE, keystone_db="kpass")
    assert keystone["database"]["connection"] == "mysql+pymysql://keystone:kpass@127.0.0.1/keystone"
    assert keystone["token"]["provider"] == "fernet"
    assert "keystone_authtoken" not in keystone
    url = openstack.transport_url(["node1", "node2"], "rpass")
    assert url == "rabbit://openstack:rpass@node1:5672,openstack:rpass@node2:5672/"
    nova = config(
        catalog.NOVA_API, **{"nova-api_db": "n", "nova-api_keystone": "ks", "transport_url": url}
    )
    assert nova["DEFAULT"]["transport_url"] == url
    assert nova["api_database"]["connection"] == "mysql+pymysql://nova:n@127.0.0.1/nova_api"
    assert nova["database"]["connection"] == "mysql+pymysql://nova:n@127.0.0.1/nova"
    assert nova["keystone_authtoken"]["auth_url"] == "http://192.0.2.100:5000/"
    assert nova["keystone_authtoken"]["password"] == "ks"
    assert nova["keystone_authtoken"]["username"] == "nova"
    assert nova["DEFAULT"]["my_ip"] == "192.0.2.12"


def test_keystones_cache_is_every_nodes_memcached():
    """oslo.cache's memcache_pool on the memcached clone: every node's instance, each on its
    node's own address and the agent's default port."""
    servers = openstack.memcache_servers(["192.0.2.11", "192.0.2.12"])
    assert servers == CACHE
    cache = config(catalog.KEYSTONE, keystone_db="kpass")["cache"]
    assert {key: cache[key] for key in ("enabled", "backend", "memcache_servers")} == {
        "enabled": "true",
        "backend": "oslo_cache.memcache_pool",
        "memcache_servers": CACHE,
    }
    # the services ordered after the memcached clone are those whose cache it is
    cached = [s.name for s in catalog.SERVICES if "cache" in dict(s.lab.config)]
    assert cached == [s.name for s in catalog.SERVICES if s.uses_cache] == [catalog.KEYSTONE.name]


def test_credentials_files_are_what_the_agents_read(tmp_path):
    path = tmp_path / "monitor.credentials"
    path.write_text(
        openstack.credentials_text("http://192.0.2.11:5000/v3", "stackha-monitor", "pw", "service")
    )
    credentials = api.read_openstack_credentials(str(path))
    assert (credentials.auth_url, credentials.username, credentials.password) == (
        "http://192.0.2.11:5000/v3",
        "stackha-monitor",
        "pw",
    )
    assert credentials.project_name == "service" and credentials.user_domain_name == "Default"


def test_haproxy_binds_the_vip_and_checks_every_node():
    text = openstack.haproxy_config("192.0.2.100", BACKENDS)
    keystone, nova = text.split("listen keystone", 1)[1].split("listen nova_api")
    assert "bind 192.0.2.100:5000" in keystone and "option httpchk GET /v3" in keystone
    assert "bind 192.0.2.100:8774" in nova and "option httpchk GET /\n" in nova
    for name, address in BACKENDS:
        assert f"server {name} {address}:5000 check inter 2s fall 2 rise 2" in keystone
        assert f"server {name} {address}:8774 check inter 2s fall 2 rise 2" in nova
    assert f"stats socket {openstack.HAPROXY_STATS_SOCKET}" in text


def test_the_vip_is_the_address_nothing_else_in_the_lab_has():
    assert openstack.vip_of("192.168.213.0/24") == "192.168.213.100"
    assert openstack.database_vip_of("192.168.213.0/24") == "192.168.213.98"
    taken = {n.address for n in plan(64, "192.168.213.0/24")}
    taken |= {n.bmc_address for n in plan(64, "192.168.213.0/24")}
    assert "192.168.213.98" not in taken and "192.168.213.100" not in taken


def test_through_the_database_vip_every_node_writes_to_the_one_haproxy_picks():
    """Given the database VIP, every connection string names it (nova's cell mappings too,
    which are made from them): HAProxy there sends it to one Galera node."""
    keystone = config(catalog.KEYSTONE, database_host="192.0.2.98", keystone_db="kpass")
    assert keystone["database"]["connection"] == (
        "mysql+pymysql://keystone:kpass@192.0.2.98/keystone"
    )
    nova = config(
        catalog.NOVA_API,
        database_host="192.0.2.98",
        **{"nova-api_db": "n", "nova-api_keystone": "k"},
    )
    assert nova["api_database"]["connection"] == "mysql+pymysql://nova:n@192.0.2.98/nova_api"
    assert nova["database"]["connection"] == "mysql+pymysql://nova:n@192.0.2.98/nova"


def test_the_health_checks_user_has_no_privilege_and_comes_from_the_labs_subnet_only():
    sql = openstack.database_sql(PASSWORDS, "c" * 32, "192.0.2.0/24")
    account = "'stackha-check'@'192.0.2.0/255.255.255.0'"
    assert f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{'c' * 32}';" in sql
    assert f"ALTER USER {account} IDENTIFIED BY '{'c' * 32}' WITH MAX_USER_CONNECTIONS 30;" in sql
    assert "stackha-check" not in " ".join(line for line in sql.splitlines() if "GRANT" in line)
    assert "stackha-check" not in openstack.database_sql(PASSWORDS)
    credentials = parsed(openstack.check_credentials_text("c" * 32))
    assert dict(credentials["client"]) == {"user": "stackha-check", "password": "c" * 32}


def test_haproxy_sends_the_database_vip_to_one_galera_node_with_the_galera_check():
    text = openstack.haproxy_config(
        "192.0.2.100", BACKENDS, database_vip="192.0.2.98", check_command="/v/stackha-galera-check"
    )
    global_section = text.split("defaults", 1)[0]
    assert "    external-check\n" in global_section and "insecure-fork-wanted" in global_section
    assert "chroot" not in text
    galera = text.split("listen galera", 1)[1]
    assert "bind 192.0.2.98:3306" in galera
    assert "external-check command /v/stackha-galera-check" in galera
    assert [line.split()[1:] for line in galera.splitlines() if "    server " in line] == [
        ["node1", "192.0.2.11:3306"],
        ["node2", "192.0.2.12:3306", "backup"],
        ["node3", "192.0.2.13:3306", "backup"],
    ]
    assert "listen galera" not in openstack.haproxy_config("192.0.2.100", BACKENDS)
    assert "external-check" not in openstack.haproxy_config("192.0.2.100", BACKENDS)


def test_the_check_command_is_the_one_beside_stackha():
    assert openstack.galera_check_command("/opt/v/bin/stackha") == "/opt/v/bin/stackha-galera-check"


def test_only_the_nodes_network_settings_are_read_from_its_sysctl_conf():
    text = "# comment\nnet.ipv4.ip_nonlocal_bind = 1\nkernel.panic = 5\nnet.core.somaxconn=512\n"
    assert read_sysctls(text) == [
        ("net.ipv4.ip_nonlocal_bind", "1"),
        ("net.core.somaxconn", "512"),
    ]


def test_lab_down_removes_the_haproxy_configuration_provisioning_wrote(tmp_path, fake_clock):
    """down leaves no file of a lab whose OpenStack APIs were provisioned (provision writes the
    HAProxy configuration into the lab's directory)."""
    directory = tmp_path / "lab"
    directory.mkdir()
    lab = Lab(str(directory), FakeRunner(), fake_clock, FakeProcessTable(fake_clock))
    subnet = "192.0.2.0/24"
    lab.save(LabState(subnet, "192.0.2.1", created_root=str(directory), nodes=plan(3, subnet)))
    backends = [(n.name, n.address) for n in lab.load().nodes]
    (directory / HAPROXY_CONFIG).write_text(openstack.haproxy_config("192.0.2.100", backends))
    lab.down()
    assert not directory.exists()


# -- KeystoneAdmin against a small HTTP server that drops a connection ------------------------


class _DroppingKeystone:
    """Answers like Keystone's /v3/projects, closing the connection without an answer on the
    requests numbered in ``drop`` (1-based), as a dying uwsgi worker does."""

    def __init__(self, drop, made_before_drop=False):
        import http.server
        import threading

        self.requests = []
        self.projects = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dropped(self):
                outer.requests.append(f"{self.command} {self.path}")
                if len(outer.requests) in drop:
                    self.close_connection = True
                    return True
                return False

            def do_GET(self):  # noqa: N802 - http.server's name
                if not self._dropped():
                    self._answer(200, {"projects": list(outer.projects)})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                created = {"id": f"id{len(outer.projects) + 1}", **body["project"]}
                if len(outer.requests) + 1 in drop:
                    if made_before_drop:
                        outer.projects.append(created)
                    self._dropped()
                    return
                outer.requests.append(f"POST {self.path}")
                outer.projects.append(created)
                self._answer(201, {"project": created})

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("made_before_drop", [False, True])
def test_a_post_dropped_without_an_answer_is_looked_up_then_sent_once_more(
    monkeypatch, made_before_drop
):
    monkeypatch.setattr(openstack, "RETRY_PAUSE_S", 0)
    keystone = _DroppingKeystone(drop={2}, made_before_drop=made_before_drop)
    try:
        admin = openstack.KeystoneAdmin(keystone.url, "token", timeout=5)
        project = admin.ensure("projects", "name=service", {"project": {"name": "service"}})
    finally:
        keystone.close()
    assert project == "id1"
    assert len(keystone.projects) == 1
    expected = [
        "GET /v3/projects?name=service",
        "POST /v3/projects",
        "GET /v3/projects?name=service",
    ]
    if not made_before_drop:
        expected.append("POST /v3/projects")
    assert keystone.requests == expected


def test_a_get_dropped_is_sent_again_and_gives_up_after_the_retries(monkeypatch):
    monkeypatch.setattr(openstack, "RETRY_PAUSE_S", 0)
    keystone = _DroppingKeystone(drop={1, 2})
    try:
        admin = openstack.KeystoneAdmin(keystone.url, "token", timeout=5)
        assert admin.find("projects", "name=x") is None
        assert len(keystone.requests) == 3
    finally:
        keystone.close()
    keystone = _DroppingKeystone(drop={1, 2, 3})
    try:
        admin = openstack.KeystoneAdmin(keystone.url, "token", timeout=5)
        with pytest.raises(http_client.NotReachable, match="Remote end closed connection"):
            admin.find("projects", "name=x")
        assert len(keystone.requests) == openstack.RETRIES + 1
    finally:
        keystone.close()
