"""The OCF API agents (ocf:stackha:keystone, nova-api, placement-api, glance-api, neutron-server,
cinder-api) run as Pacemaker runs them, with fakes at the boundary: a fake runner that records
what is spawned, a fake process table and clock, and a loopback HTTP server standing in for the
service on its port (started when the service is spawned, as the real one starts listening) and
for Keystone. No uwsgi, no OpenStack, no root.

Each service's expected facts are written here from Debian's packages and the services' own
code, not read from stackha's records (stackha.services.api_catalog): a wrong record fails."""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from agent_runs import free_port
from fakes import FakeHttpServer, FakeProcess, FakeProcessTable
from lxml import etree
from stackha.agents import api_service, declaration
from stackha.clock import SystemClock
from stackha.ocf.agent import main

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("keystone", "nova-api", "placement-api", "glance-api", "neutron-server", "cinder-api")
# the services that validate their clients' tokens with keystone
VALIDATING = NAMES[1:]
AGENTS = {name: declaration(name) for name in NAMES}
USER = pwd.getpwuid(os.getuid()).pw_name  # a user that exists, root or not
PASSWORD = "Pa55-'w0rd'-x9Q"  # in the credentials file only: never in any output
TOKEN = "gAAAAABn-token"
PROJECT_ID = "5d3f0a6c2b8e4f7a9c1d2e3f4a5b6c7d"  # the token's project (Keystone's answer)
MASTER = 4321
WORKERS = (4322, 4323)
START_S = 20
# What each service is asked, and the names its WSGI application reads its config from.
VERSION_PATHS = {
    "keystone": "/v3",
    "nova-api": "/",
    "placement-api": "/",
    "glance-api": "/",
    "neutron-server": "/",
    "cinder-api": "/",
}
USERS = {
    "keystone": "keystone",
    "nova-api": "nova",
    "placement-api": "placement",
    "glance-api": "glance",
    "neutron-server": "neutron",
    "cinder-api": "cinder",
}
DEBIAN_PORTS = {
    "keystone": 5000,
    "nova-api": 8774,
    "placement-api": 8778,
    "glance-api": 9292,
    "neutron-server": 9696,
    "cinder-api": 8776,
}
# The name of Debian's config file of each (it matters to placement and glance: see
# CONFIG_NAME_FIXED)
CONFIG_NAMES = {
    "keystone": "keystone.conf",
    "nova-api": "nova.conf",
    "placement-api": "placement.conf",
    "glance-api": "glance-api.conf",
    "neutron-server": "neutron.conf",
    "cinder-api": "cinder.conf",
}
# placement/wsgi.py joins OS_PLACEMENT_CONFIG_DIR and "placement.conf"; glance/common/wsgi_app.py
# reads glance-api.conf from OS_GLANCE_CONFIG_DIR: neither takes a file of another name.
CONFIG_NAME_FIXED = {"placement-api": "placement.conf", "glance-api": "glance-api.conf"}
CONFIG_ENV = {
    "keystone": {"OS_KEYSTONE_CONFIG_DIR": "{dir}", "OS_KEYSTONE_CONFIG_FILES": "{name}"},
    # nova loads its paste pipeline from the first file
    "nova-api": {"OS_NOVA_CONFIG_DIR": "{dir}", "OS_NOVA_CONFIG_FILES": "api-paste.ini;{name}"},
    "placement-api": {"OS_PLACEMENT_CONFIG_DIR": "{dir}"},
    "glance-api": {"OS_GLANCE_CONFIG_DIR": "{dir}"},
    # neutron/server/__init__.py: the files of the list, in the directory
    "neutron-server": {
        "OS_NEUTRON_CONFIG_DIR": "{dir}",
        "OS_NEUTRON_CONFIG_FILES": "{name};plugins/ml2/ml2_conf.ini",
    },
    # cinder/wsgi/wsgi.py reads no environment: its sys.argv (PYARGV)
    "cinder-api": {},
}
# What uwsgi hands the application as its sys.argv[1:] (uwsgi --pyargv, one string).
PYARGV = {"cinder-api": "--config-file {config}"}
# The files beside the config file that each application reads from its directory.
COMPANIONS = {
    "keystone": (),
    "nova-api": ("api-paste.ini",),
    "placement-api": (),
    "glance-api": ("glance-api-paste.ini",),
    "neutron-server": ("plugins/ml2/ml2_conf.ini", "api-paste.ini"),
    "cinder-api": ("api-paste.ini",),
}
# The service's own server and its name in /proc/PID/comm (15 characters at most).
EXECUTABLES = {
    "keystone": "keystone-wsgi-public",
    "nova-api": "nova-api",
    "placement-api": "placement-api",
    "glance-api": "glance-api",
    "neutron-server": "neutron-server",
    "cinder-api": "cinder-api",
}
COMMS = {
    "keystone": "keystone-wsgi-p",
    "nova-api": "nova-api",
    "placement-api": "placement-api",
    "glance-api": "glance-api",
    "neutron-server": "neutron-server",
    "cinder-api": "cinder-api",
}
# What a healthy Debian 12 service answers to its version request: status and document (from
# each service's code: keystone/api/discovery.py, nova/api/openstack/compute/versions.py,
# placement/handlers/root.py, glance/api/versions.py (300 unless asked /versions),
# neutron/pecan_wsgi/controllers/root.py, cinder/api/versions.py (Versions.all: 300)).
VERSION_STATUSES = {
    "keystone": 200,
    "nova-api": 200,
    "placement-api": 200,
    "glance-api": 300,
    "neutron-server": 200,
    "cinder-api": 300,
}
VERSION_DOCUMENTS = {
    "keystone": json.dumps({"version": {"id": "v3.14", "status": "stable"}}),
    "nova-api": json.dumps(
        {
            "versions": [
                {"id": "v2.0", "status": "SUPPORTED"},
                {"id": "v2.1", "status": "CURRENT", "version": "2.93"},
            ]
        }
    ),
    "placement-api": json.dumps(
        {"versions": [{"id": "v1.0", "status": "CURRENT", "max_version": "1.39"}]}
    ),
    "glance-api": json.dumps(
        {
            "versions": [
                {"id": "v2.16", "status": "CURRENT"},
                {"id": "v2.15", "status": "SUPPORTED"},
                {"id": "v2.0", "status": "SUPPORTED"},
            ]
        }
    ),
    "neutron-server": json.dumps({"versions": [{"id": "v2.0", "status": "CURRENT"}]}),
    "cinder-api": json.dumps(
        {"versions": [{"id": "v3.0", "status": "CURRENT", "version": "3.70", "min_version": "3.0"}]}
    ),
}
# The deep check (depth 20) of the services that validate tokens: the request made with the
# token ({project_id}: the token's project) and the headers it carries besides the token.
DEEP_CHECKS = {
    "nova-api": ("/v2.1/flavors", {}),
    # a project's usages are what any reader of the project may see from microversion 1.9
    "placement-api": (
        "/usages?project_id={project_id}",
        {"OpenStack-API-Version": "placement 1.9"},
    ),
    "glance-api": ("/v2/images?limit=1", {}),
    "neutron-server": ("/v2.0/networks?limit=1", {}),
    "cinder-api": ("/v3/{project_id}/volumes?limit=1", {}),
}
# Debian 12's ini, trimmed: no socket of its own (the init script passes --http-socket).
DEBIAN_INI = """\
[uwsgi]
master = true
die-on-term = true
processes = 2
uid = {user}
wsgi-file = /usr/bin/{name}-wsgi
#http-socket = :{port}
"""
SERVICE_CONF = """\
[DEFAULT]
debug = false
[database]
connection = mysql+pymysql://{user}:db%40pass@192.0.2.10/{user}
"""
KEYSTONE_401 = json.dumps({"error": {"code": 401, "title": "Unauthorized", "message": "no"}})
# What Keystone answers POST /v3/auth/tokens with, besides the X-Subject-Token header.
TOKEN_BODY = json.dumps({"token": {"project": {"id": PROJECT_ID, "name": "service"}}})


def executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 99\n")  # never run: the runner is fake
    path.chmod(0o755)
    return path


def reason(err):
    last = err.strip().splitlines()[-1] if err.strip() else ""
    prefix = "ocf-exit-reason:"
    return last[len(prefix) :] if last.startswith(prefix) else ""


class Node:
    """One node's API service under test: its files under ``root``, the fakes, and the HTTP
    servers that stand in for the service and for Keystone."""

    def __init__(self, name, root, runner, clock, processes):
        self.name = name
        self.agent = AGENTS[name]
        self.runner = runner
        self.clock = clock
        self.processes = processes
        self.version_path = VERSION_PATHS[name]
        user = USERS[name]
        self.uwsgi = executable(root / "bin" / "uwsgi")
        self.executable = executable(root / "bin" / EXECUTABLES[name])
        etc = root / "etc" / user
        etc.mkdir(parents=True)
        self.config = etc / CONFIG_NAMES[name]
        self.config.write_text(SERVICE_CONF.format(user=user))
        for companion in COMPANIONS[name]:
            (etc / companion).parent.mkdir(parents=True, exist_ok=True)
            (etc / companion).write_text("[DEFAULT]\n")
        self.ini = etc / f"{name}-uwsgi.ini"
        self.ini.write_text(DEBIAN_INI.format(user=user, name=name, port=DEBIAN_PORTS[name]))
        self.credentials = etc / "stackha-monitor.credentials"
        self.write_credentials(f"http://127.0.0.1:{free_port()}/v3")  # keystone is down
        self.pidfile = root / "run" / user / f"{name}-ocf.pid"  # its directory does not exist
        self.log_file = root / "log" / user / f"{name}-ocf.log"
        self.ha_log = root / "pacemaker.log"
        self.port = free_port()
        self.answers = {
            ("GET", self.version_path): (
                VERSION_STATUSES[name],
                {"Content-Type": "application/json"},
                VERSION_DOCUMENTS[name],
            )
        }
        self.servers = []

    def write_credentials(self, auth_url, password=PASSWORD):
        self.credentials.write_text(
            f"auth_url={auth_url}\nusername=monitor\npassword={password}\nproject_name=service\n"
        )

    def env(self, **extra):
        return {
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": f"{self.name}:0",
            "OCF_RESKEY_crm_feature_set": "3.16.1",
            "OCF_RESKEY_CRM_meta_clone_max": "3",
            "OCF_RESKEY_CRM_meta_timeout": f"{START_S * 1000}",
            "OCF_RESKEY_uwsgi_binary": str(self.uwsgi),
            "OCF_RESKEY_uwsgi_ini": str(self.ini),
            "OCF_RESKEY_executable": str(self.executable),
            "OCF_RESKEY_config": str(self.config),
            "OCF_RESKEY_user": USER,
            "OCF_RESKEY_pidfile": str(self.pidfile),
            "OCF_RESKEY_address": "127.0.0.1",
            "OCF_RESKEY_port": str(self.port),
            "OCF_RESKEY_log_file": str(self.log_file),
            "OCF_RESKEY_credentials": str(self.credentials),
            "HA_LOGFILE": str(self.ha_log),
            **extra,
        }

    def monitor_env(self, level, **extra):
        return self.env(
            **{
                "OCF_RESKEY_CRM_meta_interval": "10000",
                "OCF_RESKEY_CRM_meta_timeout": "30000",
                "OCF_CHECK_LEVEL": str(level),
                **extra,
            }
        )

    def run(self, action, env, clock=None):
        """One agent call (on ``clock``, the fake one by default); the password of the
        credentials file is in none of its output."""
        out, err = io.StringIO(), io.StringIO()
        code = main(
            self.agent,
            [self.name, action],
            env,
            runner=self.runner,
            clock=clock or self.clock,
            stdout=out,
            stderr=err,
        )
        for text in (out.getvalue(), err.getvalue(), self.log()):
            assert PASSWORD not in text and "w0rd" not in text
        return code, err.getvalue()

    def log(self):
        """What the agent logged (HA_LOGFILE: every level)."""
        return self.ha_log.read_text() if self.ha_log.exists() else ""

    # -- the service's processes and port ----------------------------------------------------

    def listen(self, port=None):
        """The service answering on its port: ``answers``, read at each request."""
        server = FakeHttpServer(port=port or self.port)
        server.answers = self.answers
        self.servers.append(server)
        return server

    def requests(self):
        return [request[:2] for server in self.servers for request in server.requests]

    def running(self, pid=MASTER, name="uwsgi", workers=WORKERS, worker_state="S"):
        """A master that runs, with its pid file, and its workers."""
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{pid}\n")
        self.processes.add(
            pid, FakeProcess(name, children=list(workers), dies_on={signal.SIGTERM: 1.0})
        )
        for worker in workers:
            self.processes.add(
                worker, FakeProcess(name, state=worker_state, dies_on={signal.SIGTERM: 0.5})
            )
        return pid

    def boots(self, name="uwsgi", listens_on=None, dies=False):
        """What is spawned runs (or dies at once) and listens, as the real service does."""
        spawn = self.runner.spawn

        def spawned(spec):
            pid = spawn(spec)
            if dies:
                self.processes.add(pid, FakeProcess(name, state="Z"))
            else:
                self.processes.add(pid, FakeProcess(name, children=[pid + 100]))
                self.processes.add(pid + 100, FakeProcess(name))
                self.listen(listens_on)
            return pid

        self.runner.spawn = spawned

    def close(self):
        for server in self.servers:
            server.close()


@pytest.fixture
def processes(fake_clock, monkeypatch):
    table = FakeProcessTable(fake_clock)
    monkeypatch.setattr(api_service, "PROCESSES", table)
    return table


@pytest.fixture
def make_node(tmp_path, fake_runner, fake_clock, processes):
    made = []

    def make(name):
        node = Node(name, tmp_path / name, fake_runner, fake_clock, processes)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


@pytest.fixture(params=NAMES)
def node(request, make_node):
    return make_node(request.param)


@pytest.fixture(params=VALIDATING)
def validating(request, make_node):
    """A service that validates its clients' tokens with keystone."""
    return make_node(request.param)


@pytest.fixture
def keystone(make_node):
    return make_node("keystone")


@pytest.fixture
def nova(make_node):
    return make_node("nova-api")


@pytest.fixture
def keystone_api():
    """Keystone where the credentials' auth_url points (the VIP in a cluster)."""
    server = FakeHttpServer()
    yield server
    server.close()


@pytest.fixture
def host_name(monkeypatch):
    """This node is "node1"; ``host_name["node1"] = address`` says what it resolves to. Other
    names resolve as always (the loopback servers)."""
    addresses = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(addresses.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "gethostname", lambda: "node1")
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return addresses


# -- meta-data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        (
            "keystone",
            {
                "port": "5000",
                "uwsgi_ini": "/etc/keystone/keystone-uwsgi.ini",
                "user": "keystone",
                "config": "/etc/keystone/keystone.conf",
                "executable": "/usr/bin/keystone-wsgi-public",
                "pidfile": "/run/keystone/keystone-ocf.pid",
                "log_file": "/var/log/keystone/keystone-ocf.log",
            },
        ),
        (
            "nova-api",
            {
                "port": "8774",
                "uwsgi_ini": "/etc/nova/nova-api-uwsgi.ini",
                "user": "nova",
                "config": "/etc/nova/nova.conf",
                "executable": "/usr/bin/nova-api",
                "pidfile": "/run/nova/nova-api-ocf.pid",
                "log_file": "/var/log/nova/nova-api-ocf.log",
            },
        ),
        (
            "placement-api",
            {
                "port": "8778",
                "uwsgi_ini": "/etc/placement/placement-api-uwsgi.ini",
                "user": "placement",
                "config": "/etc/placement/placement.conf",
                "executable": "/usr/bin/placement-api",
                "pidfile": "/run/placement/placement-api-ocf.pid",
                "log_file": "/var/log/placement/placement-api-ocf.log",
            },
        ),
        (
            "glance-api",
            {
                "port": "9292",
                "uwsgi_ini": "/etc/glance/glance-api-uwsgi.ini",
                "user": "glance",
                "config": "/etc/glance/glance-api.conf",
                "executable": "/usr/bin/glance-api",
                "pidfile": "/run/glance/glance-api-ocf.pid",
                "log_file": "/var/log/glance/glance-api-ocf.log",
            },
        ),
        (
            "neutron-server",
            {
                "port": "9696",
                "uwsgi_ini": "/etc/neutron/neutron-api-uwsgi.ini",
                "user": "neutron",
                "config": "/etc/neutron/neutron.conf",
                "executable": "/usr/bin/neutron-server",
                "pidfile": "/run/neutron/neutron-server-ocf.pid",
                "log_file": "/var/log/neutron/neutron-server-ocf.log",
            },
        ),
        (
            "cinder-api",
            {
                "port": "8776",
                "uwsgi_ini": "/etc/cinder/cinder-api-uwsgi.ini",
                "user": "cinder",
                "config": "/etc/cinder/cinder.conf",
                "executable": "/usr/bin/cinder-api",
                "pidfile": "/run/cinder/cinder-api-ocf.pid",
                "log_file": "/var/log/cinder/cinder-api-ocf.log",
            },
        ),
    ],
)
def test_meta_data_declares_debians_defaults_and_three_monitor_depths(name, defaults):
    out = io.StringIO()
    env = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
    assert main(AGENTS[name], [name, "meta-data"], env, stdout=out) == 0
    root = etree.fromstring(out.getvalue().encode())
    found = {p.get("name"): p.find("content").get("default") for p in root.findall("parameters/*")}
    assert found == {
        "mode": "uwsgi",
        "uwsgi_binary": "/usr/bin/uwsgi",
        "address": "",
        "credentials": "",
        "check_timeout": "5",
        **defaults,
    }
    assert [o.get("value") for o in root.findall("parameters/*[@name='mode']/content/option")] == [
        "uwsgi",
        "executable",
    ]
    monitors = [
        (a.get("depth"), a.get("interval"), a.get("timeout"))
        for a in root.findall("actions/action[@name='monitor']")
    ]
    assert monitors == [("0", "10s", "30s"), ("10", "30s", "30s"), ("20", "120s", "60s")]
    relaxng = etree.RelaxNG(etree.parse(str(ROOT / "tests/schemas/ocf-ra-1.1.rng")))
    assert relaxng.validate(root), relaxng.error_log


# -- what start and validate-all refuse ----------------------------------------------------------


def test_a_configuration_that_works_validates(node):
    code, err = node.run("validate-all", node.env())
    assert code == 0, err


def test_a_missing_uwsgi_is_not_installed(node):
    node.uwsgi.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"{node.uwsgi} is not installed or not executable")
    assert node.runner.spawned == []


def test_a_missing_server_in_executable_mode_is_not_installed(node):
    node.executable.unlink()
    code, err = node.run("validate-all", node.env(OCF_RESKEY_mode="executable"))
    assert (code, reason(err)) == (5, f"{node.executable} is not installed or not executable")


@pytest.mark.parametrize(
    ("name", "companion"),
    [(name, companion) for name in NAMES for companion in COMPANIONS[name]],
)
def test_a_file_the_service_reads_beside_its_config_missing_is_not_installed(
    make_node, name, companion
):
    """nova's and cinder's api-paste.ini, glance's glance-api-paste.ini, neutron's ML2 plugin
    file and api-paste.ini: each is read from the config file's directory."""
    node = make_node(name)
    missing = node.config.parent / companion
    missing.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"{missing} does not exist ({name} reads it)")
    assert node.runner.spawned == []


@pytest.mark.parametrize("name", sorted(CONFIG_NAME_FIXED))
@pytest.mark.parametrize("action", ["validate-all", "start"])
def test_a_config_file_of_another_name_is_a_definition_problem_naming_it(make_node, name, action):
    """placement and glance read one file name from the directory they are given: a config
    parameter naming another file would be silently ignored, on every node alike (6)."""
    node = make_node(name)
    other = node.config.parent / "stackha-site.conf"
    other.write_text(node.config.read_text())
    code, err = node.run(action, node.env(OCF_RESKEY_config=str(other)))
    assert (code, reason(err)) == (
        6,
        f"config = {other}: {name} reads {CONFIG_NAME_FIXED[name]} from the directory it is "
        "given; name the file so",
    )
    assert node.runner.spawned == []


@pytest.mark.parametrize("name", sorted(set(NAMES) - set(CONFIG_NAME_FIXED)))
def test_a_config_file_of_any_name_is_what_the_service_is_pointed_at(make_node, name):
    """The others take a list of files or a --config-file: any name will do."""
    node = make_node(name)
    other = node.config.parent / "stackha-site.conf"
    other.write_text(node.config.read_text())
    node.boots()
    code, err = node.run("start", node.env(OCF_RESKEY_config=str(other)))
    assert code == 0, err
    (spawned,) = node.runner.spawned
    assert spawned.env == {
        variable: value.format(dir=other.parent, name=other.name)
        for variable, value in CONFIG_ENV[name].items()
    }
    if name in PYARGV:
        assert spawned.argv[-2:] == ("--pyargv", PYARGV[name].format(config=other))


def test_a_cinder_config_path_with_a_space_is_a_definition_problem(make_node):
    """uwsgi splits its --pyargv at spaces: cinder would read a file that does not exist."""
    node = make_node("cinder-api")
    spaced = node.config.parent / "my site" / "cinder.conf"
    spaced.parent.mkdir()
    spaced.write_text(node.config.read_text())
    (spaced.parent / "api-paste.ini").write_text("[DEFAULT]\n")
    code, err = node.run("validate-all", node.env(OCF_RESKEY_config=str(spaced)))
    assert (code, reason(err)) == (
        6,
        f"config = {str(spaced)!r}: uwsgi passes it on a --pyargv, which a space would split",
    )


def test_a_missing_config_file_is_not_installed(node):
    node.config.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"config file {node.config} does not exist")
    assert node.runner.spawned == []


def test_a_config_file_that_does_not_parse_is_this_nodes_problem_naming_the_line(node):
    node.config.write_text("[DEFAULT]\ndebug = false\nthe line that is no option\n")
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        5,
        f"config {node.config} does not parse: line 3 is not 'name = value'",
    )
    assert node.runner.spawned == []


def test_a_missing_uwsgi_ini_is_not_installed(node):
    node.ini.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (5, f"uwsgi ini file {node.ini} does not exist")


def test_the_uwsgi_ini_is_not_needed_in_executable_mode(node):
    node.ini.unlink()
    code, err = node.run("validate-all", node.env(OCF_RESKEY_mode="executable"))
    assert code == 0, err


@pytest.mark.parametrize("action", ["start", "validate-all"])
def test_a_uwsgi_ini_without_a_uwsgi_section_is_this_nodes_problem(node, action):
    node.ini.write_text("[keystone]\nhttp-socket = :5000\n")
    code, err = node.run(action, node.env())
    assert (code, reason(err)) == (5, f"{node.ini} has no [uwsgi] section with options")
    assert node.runner.spawned == []


def test_an_unknown_user_is_not_installed(node):
    code, err = node.run("start", node.env(OCF_RESKEY_user="stackha-no-such-user"))
    assert (code, reason(err)) == (5, "user stackha-no-such-user does not exist on this node")
    assert node.runner.spawned == []


def test_a_missing_credentials_file_is_this_nodes_problem(node):
    node.credentials.unlink()
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        5,
        f"credentials file {node.credentials}: No such file or directory",
    )


def test_a_credentials_file_lacking_keys_is_this_nodes_problem(node):
    node.credentials.write_text(f"username=monitor\npassword={PASSWORD}\n")
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        5,
        f"credentials file {node.credentials} lacks auth_url, project_name",
    )


@pytest.mark.parametrize("mode", ["uwsgi", "executable"])
def test_no_address_and_a_host_name_of_loopback_only_is_this_nodes_problem(node, host_name, mode):
    """Debian's installer maps the host name to 127.0.1.1: nothing else could reach it."""
    host_name["node1"] = "127.0.1.1"
    code, err = node.run("start", node.env(OCF_RESKEY_address="", OCF_RESKEY_mode=mode))
    assert (code, reason(err)) == (
        5,
        "address not set and host name node1 resolves to loopback only (127.0.1.1): "
        "set address to this node's address",
    )
    assert node.runner.spawned == []


def test_no_address_binds_the_address_of_the_host_name(node, host_name):
    """Here the name's address is not this machine's: start says so before spawning."""
    host_name["node1"] = "192.0.2.7"
    code, err = node.run("start", node.env(OCF_RESKEY_address=""))
    assert (code, reason(err)) == (
        5,
        f"{node.name} cannot start: address 192.0.2.7 is not an address of this node",
    )
    assert node.runner.spawned == []


def test_a_port_another_process_holds_is_not_started_on(node):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.port))
        taken.listen(1)
        code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        5,
        f"{node.name} cannot start: port {node.port} on 127.0.0.1 is already in use by another "
        "process",
    )
    assert node.runner.spawned == []


# -- start -------------------------------------------------------------------------------------


def test_start_runs_uwsgi_with_the_ini_as_debians_init_script_does(node):
    node.boots()
    code, err = node.run("start", node.env())
    assert code == 0, err
    (spawned,) = node.runner.spawned
    assert spawned.argv == (
        str(node.uwsgi),
        "--ini",
        str(node.ini),
        "--die-on-term",
        "--http-socket",
        f"127.0.0.1:{node.port}",
        *pyargv(node),
    )
    assert spawned.user == USER
    assert spawned.output_path == str(node.log_file)
    assert spawned.env == {
        variable: value.format(dir=node.config.parent, name=node.config.name)
        for variable, value in CONFIG_ENV[node.name].items()
    }
    pid = node.runner.next_pid
    assert node.pidfile.read_text() == f"{pid}\n"
    assert node.log_file.parent.is_dir()
    assert node.requests() == [("GET", node.version_path)]
    assert (
        f"{node.name} started (pid {pid}) and answers at http://127.0.0.1:{node.port}" in node.log()
    )


def pyargv(node):
    """The end of uwsgi's command line that hands the application its arguments, if any."""
    if node.name not in PYARGV:
        return ()
    return ("--pyargv", PYARGV[node.name].format(config=node.config))


def test_start_waits_until_the_version_document_answers(node):
    good = node.answers["GET", node.version_path]
    loading = iter([(503, {}, ""), (503, {}, "")])
    node.answers["GET", node.version_path] = lambda: next(loading, good)
    node.boots()
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert node.clock.sleeps == [0.2, 0.2]
    assert node.requests() == [("GET", node.version_path)] * 3


def test_an_ini_with_its_own_http_socket_gets_none_added_and_is_probed_there(node):
    own_port = free_port()
    node.ini.write_text(node.ini.read_text() + f"http-socket = 127.0.0.1:{own_port}\n")
    node.boots(listens_on=own_port)
    code, err = node.run("start", node.env())
    assert code == 0, err
    (spawned,) = node.runner.spawned
    assert spawned.argv == (str(node.uwsgi), "--ini", str(node.ini), "--die-on-term", *pyargv(node))
    (server,) = node.servers
    assert server.port == own_port and len(server.requests) == 1


def test_start_without_a_good_answer_fails_with_the_last_problem(node):
    node.answers["GET", node.version_path] = (500, {}, "Internal Server Error")
    node.boots()
    code, err = node.run("start", node.env(OCF_RESKEY_CRM_meta_timeout="5000"))
    assert (code, reason(err)) == (
        1,
        f"{node.name} answering not reached within 4s: {node.name} at "
        f"http://127.0.0.1:{node.port}: GET {node.version_path} answered 500 Internal Server Error",
    )


def test_a_service_that_dies_during_start_fails_naming_its_log(node):
    node.boots(dies=True)
    code, err = node.run("start", node.env())
    assert (code, reason(err)) == (
        1,
        f"{node.name} exited during start; its output is in {node.log_file}",
    )
    assert node.clock.sleeps == []


def test_start_of_a_running_service_spawns_nothing(node):
    node.running()
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert node.runner.spawned == []
    assert node.pidfile.read_text() == f"{MASTER}\n"


def test_start_replaces_a_stale_pid_file(node):
    node.pidfile.parent.mkdir(parents=True)
    node.pidfile.write_text(f"{MASTER}\n")  # no such process
    node.boots()
    code, err = node.run("start", node.env())
    assert code == 0, err
    assert node.pidfile.read_text() == f"{node.runner.next_pid}\n"


def test_keystones_own_server_gets_its_address_on_the_command_line(keystone):
    keystone.boots(name=COMMS["keystone"])
    code, err = keystone.run("start", keystone.env(OCF_RESKEY_mode="executable"))
    assert code == 0, err
    (spawned,) = keystone.runner.spawned
    assert spawned.argv == (
        str(keystone.executable),
        "--host",
        "127.0.0.1",
        "--port",
        str(keystone.port),
    )
    assert spawned.env == {
        "OS_KEYSTONE_CONFIG_DIR": str(keystone.config.parent),
        "OS_KEYSTONE_CONFIG_FILES": "keystone.conf",
    }
    assert not Path(f"{keystone.pidfile}.listen.conf").exists()


def test_nova_apis_own_server_gets_its_address_from_a_second_config_file(nova):
    nova.boots(name=COMMS["nova-api"])
    code, err = nova.run("start", nova.env(OCF_RESKEY_mode="executable"))
    assert code == 0, err
    listen_config = Path(f"{nova.pidfile}.listen.conf")
    (spawned,) = nova.runner.spawned
    assert spawned.argv == (
        str(nova.executable),
        "--config-file",
        str(nova.config),
        "--config-file",
        str(listen_config),
    )
    assert listen_config.read_text() == (
        "# written by ocf:stackha:nova-api\n"
        "[DEFAULT]\n"
        "osapi_compute_listen = 127.0.0.1\n"
        f"osapi_compute_listen_port = {nova.port}\n"
        "enabled_apis = osapi_compute\n"
    )
    assert nova.requests() == [("GET", "/")]


# How the other services' own servers are told their address: placement's pbr script on its
# command line; glance (glance/common/wsgi.py), neutron (neutron/conf/common.py) and cinder
# (cinder/service.py) read it from their configuration only: a second config file.
OWN_SERVERS = {
    "placement-api": (("--host", "127.0.0.1", "--port", "{port}"), ""),
    "glance-api": (
        ("--config-file", "{config}", "--config-file", "{listen}"),
        "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {port}\n",
    ),
    "neutron-server": (
        (
            "--config-file",
            "{config}",
            "--config-file",
            "{dir}/plugins/ml2/ml2_conf.ini",
            "--config-file",
            "{listen}",
        ),
        "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {port}\n",
    ),
    "cinder-api": (
        ("--config-file", "{config}", "--config-file", "{listen}"),
        "[DEFAULT]\nosapi_volume_listen = 127.0.0.1\nosapi_volume_listen_port = {port}\n",
    ),
}


@pytest.mark.parametrize("name", sorted(OWN_SERVERS))
def test_the_own_server_of_the_other_services_is_told_its_address(make_node, name):
    node = make_node(name)
    node.boots(name=COMMS[name])
    code, err = node.run("start", node.env(OCF_RESKEY_mode="executable"))
    assert code == 0, err
    listen = Path(f"{node.pidfile}.listen.conf")
    arguments, listen_text = OWN_SERVERS[name]
    values = {"port": node.port, "config": node.config, "dir": node.config.parent}
    (spawned,) = node.runner.spawned
    assert spawned.argv == (
        str(node.executable),
        *(arg.format(listen=listen, **values) for arg in arguments),
    )
    if listen_text:
        assert listen.read_text() == (
            f"# written by ocf:stackha:{name}\n{listen_text.format(**values)}"
        )
    else:
        assert not listen.exists()
    assert node.requests() == [("GET", "/")]


# -- monitor -----------------------------------------------------------------------------------


def test_monitor_without_a_pid_file_is_not_running(node):
    code, err = node.run("monitor", node.monitor_env(0))
    assert (code, reason(err)) == (7, "")


def test_a_pid_file_naming_a_dead_process_is_not_running(node):
    node.pidfile.parent.mkdir(parents=True)
    node.pidfile.write_text(f"{MASTER}\n")
    code, err = node.run("monitor", node.monitor_env(10))
    assert (code, reason(err)) == (7, "")


def test_a_pid_file_whose_pid_now_names_another_process_is_not_running(node):
    node.running(name="sshd")
    code, err = node.run("monitor", node.monitor_env(0))
    assert (code, reason(err)) == (7, "")


def test_a_uwsgi_master_without_workers_has_failed(node):
    node.running(workers=())
    code, err = node.run("monitor", node.monitor_env(0))
    assert (code, reason(err)) == (1, f"{node.name} uwsgi master (pid {MASTER}) has no worker")


def test_a_uwsgi_master_whose_workers_are_zombies_has_failed(node):
    node.running(worker_state="Z")
    code, err = node.run("monitor", node.monitor_env(0))
    assert (code, reason(err)) == (1, f"{node.name} uwsgi master (pid {MASTER}) has no worker")


def test_a_master_with_workers_is_running(node):
    node.running()
    code, err = node.run("monitor", node.monitor_env(0))
    assert code == 0, err
    assert node.requests() == []  # depth 0 asks nothing over HTTP


def test_the_own_server_is_running_without_workers(node):
    """Only uwsgi is known to have workers: the process name is /proc's, cut at 15."""
    node.running(name=COMMS[node.name], workers=())
    code, err = node.run("monitor", node.monitor_env(0, OCF_RESKEY_mode="executable"))
    assert code == 0, err


def test_depth_10_asks_the_version_document(node):
    node.running()
    server = node.listen()
    code, err = node.run("monitor", node.monitor_env(10))
    assert code == 0, err
    assert node.requests() == [("GET", node.version_path)]
    assert server.requests[0][2]["Accept"] == "application/json"


def test_depth_10_fails_naming_the_status(node):
    node.answers["GET", node.version_path] = (503, {}, "busy")
    node.running()
    node.listen()
    code, err = node.run("monitor", node.monitor_env(10))
    assert (code, reason(err)) == (
        1,
        f"{node.name} at http://127.0.0.1:{node.port}: GET {node.version_path} answered "
        "503 Service Unavailable",
    )


@pytest.mark.parametrize(
    ("name", "multiple_choices_is_healthy"),
    [
        ("keystone", False),
        # nova answers 300 {"choices": ...} to paths it does not serve
        ("nova-api", True),
        ("placement-api", False),
        # glance and cinder answer GET / with 300 Multiple Choices and their version list
        ("glance-api", True),
        ("neutron-server", False),
        ("cinder-api", True),
    ],
)
def test_a_300_version_answer_is_healthy_only_where_the_service_gives_one(
    make_node, name, multiple_choices_is_healthy
):
    node = make_node(name)
    node.answers["GET", node.version_path] = (300, {}, VERSION_DOCUMENTS[name])
    node.running()
    node.listen()
    code, err = node.run("monitor", node.monitor_env(10))
    if multiple_choices_is_healthy:
        assert code == 0, err
    else:
        assert (code, reason(err)) == (
            1,
            f"{name} at http://127.0.0.1:{node.port}: GET {node.version_path} answered "
            "300 Multiple Choices",
        )


@pytest.mark.parametrize(
    ("name", "other", "wanted"),
    [
        ("placement-api", "neutron-server", "v1.0"),
        ("glance-api", "cinder-api", "v2"),
        ("neutron-server", "placement-api", "v2.0"),
        ("cinder-api", "glance-api", "v3"),
    ],
)
def test_another_services_version_document_on_the_port_has_failed(make_node, name, other, wanted):
    """What answers must be this service: placement's v1.0 is not neutron's v2.0, glance's
    v2.N not cinder's v3.0."""
    node = make_node(name)
    status = VERSION_STATUSES[name]
    node.answers["GET", "/"] = (status, {}, VERSION_DOCUMENTS[other])
    node.running()
    node.listen()
    code, err = node.run("monitor", node.monitor_env(10))
    shown = {200: "200 OK", 300: "300 Multiple Choices"}[status]
    assert (code, reason(err)) == (
        1,
        f"{name} at http://127.0.0.1:{node.port}: GET / answered {shown} without a {wanted} "
        "version document",
    )


def test_depth_10_with_nothing_listening_fails(node):
    node.running()
    code, err = node.run("monitor", node.monitor_env(10))
    assert (code, reason(err)) == (
        1,
        f"{node.name}: GET http://127.0.0.1:{node.port}{node.version_path}: Connection refused",
    )


def test_depth_20_without_credentials_is_not_configured(node):
    node.running()
    node.listen()
    code, err = node.run("monitor", node.monitor_env(20, OCF_RESKEY_credentials=""))
    assert (code, reason(err)) == (6, "OCF_CHECK_LEVEL=20 needs the credentials parameter")


def test_keystones_depth_20_gets_a_token_from_this_node(keystone):
    """The credentials' auth_url (the VIP, down here) is not asked: this node is."""
    keystone.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": TOKEN}, "{}")
    keystone.running()
    server = keystone.listen()
    code, err = keystone.run("monitor", keystone.monitor_env(20))
    assert code == 0, err
    assert keystone.requests() == [("GET", "/v3"), ("POST", "/v3/auth/tokens")]
    user = json.loads(server.requests[1][3])["auth"]["identity"]["password"]["user"]
    assert (user["name"], user["password"]) == ("monitor", PASSWORD)


def test_keystone_refusing_the_monitor_user_is_this_nodes_credentials_file(keystone):
    keystone.answers["POST", "/v3/auth/tokens"] = (401, {}, KEYSTONE_401)
    keystone.running()
    keystone.listen()
    code, err = keystone.run("monitor", keystone.monitor_env(20))
    assert (code, reason(err)) == (
        5,
        f"credentials file {keystone.credentials}: keystone refused user monitor "
        "(domain Default, project service)",
    )


def test_keystone_quoting_the_password_back_fails_without_showing_it(keystone):
    """Keystone with insecure_debug echoes what it was sent; node.run checks every output."""
    message = f"Invalid input for field 'password': {PASSWORD!r} is too long"
    echo = json.dumps({"error": {"code": 400, "message": message}})
    keystone.answers["POST", "/v3/auth/tokens"] = (400, {}, echo)
    keystone.running()
    keystone.listen()
    code, err = keystone.run("monitor", keystone.monitor_env(20))
    assert (code, reason(err)) == (
        1,
        f"keystone at http://127.0.0.1:{keystone.port}: POST http://127.0.0.1:{keystone.port}"
        "/v3/auth/tokens answered 400 Bad Request: Invalid input for field 'password': "
        '"***" is too long',
    )


def deep_path(name, project_id=PROJECT_ID):
    """The path the depth-20 check of ``name`` asks, for a token of ``project_id``."""
    return DEEP_CHECKS[name][0].format(project_id=project_id)


def answers_tokens(node, keystone_api, status=200, token_body=TOKEN_BODY, body=""):
    """Keystone (where the credentials point) gives a token of PROJECT_ID; the running
    service answers its deep check with ``status`` (and ``body``, else a fitting one)."""
    keystone_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": TOKEN}, token_body)
    node.write_credentials(f"{keystone_api.url}/v3")
    node.answers["GET", deep_path(node.name)] = (
        status,
        {"Content-Type": "application/json"},
        body or ("{}" if status == 200 else KEYSTONE_401),
    )
    node.running()
    return node.listen()


def test_depth_20_asks_the_service_with_a_token_from_keystone(validating, keystone_api):
    """placement's request names the token's project and carries its microversion, cinder's
    path names the project; the others ask a list of one."""
    server = answers_tokens(validating, keystone_api)
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 0, err
    assert [r[:2] for r in keystone_api.requests] == [("POST", "/v3/auth/tokens")]
    assert validating.requests() == [("GET", "/"), ("GET", deep_path(validating.name))]
    headers = {k.lower(): v for k, v in server.requests[1][2].items()}
    assert (headers["x-auth-token"], headers["accept"]) == (TOKEN, "application/json")
    for header, value in DEEP_CHECKS[validating.name][1].items():
        assert headers[header.lower()] == value
    if not DEEP_CHECKS[validating.name][1]:
        assert "openstack-api-version" not in headers


def test_the_service_refusing_a_keystone_token_has_failed(validating, keystone_api):
    answers_tokens(validating, keystone_api, status=401)
    code, err = validating.run("monitor", validating.monitor_env(20))
    # the path as written, not with the project's id: the same message on every node
    assert (code, reason(err)) == (
        1,
        f"{validating.name} at http://127.0.0.1:{validating.port}: GET "
        f"{DEEP_CHECKS[validating.name][0]} with a token answered 401 Unauthorized: no",
    )


def test_the_service_unable_to_validate_the_token_with_keystone_is_judged_on_its_version(
    validating, keystone_api
):
    """keystonemiddleware's own 503 (Keystone was gone when it asked, or answered it an error):
    restarting the service would not bring keystone back. A warning, and success."""
    body = json.dumps(
        {
            "message": "The server is currently unavailable. Please try again at a later "
            "time.<br /><br />\nThe Keystone service is temporarily unavailable.\n\n",
            "code": "503 Service Unavailable",
            "title": "Service Unavailable",
        }
    )
    answers_tokens(validating, keystone_api, status=503, body=body)
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 0, err
    assert (
        f"WARNING: depth-20 check skipped, {validating.name} could not validate the token: GET "
        f"{DEEP_CHECKS[validating.name][0]} with a token answered 503 Service Unavailable: "
    ) in err
    assert "The Keystone service is temporarily unavailable.; judged on its version" in err
    assert validating.requests() == [("GET", "/"), ("GET", deep_path(validating.name))]


def test_a_503_of_the_services_own_has_failed(validating, keystone_api):
    answers_tokens(validating, keystone_api, status=503, body='{"message": "no cell"}')
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert (code, reason(err)) == (
        1,
        f"{validating.name} at http://127.0.0.1:{validating.port}: GET "
        f"{DEEP_CHECKS[validating.name][0]} with a token answered 503 Service Unavailable: "
        "no cell",
    )


@pytest.mark.parametrize("name", ["placement-api", "cinder-api"])
def test_a_token_that_names_no_project_skips_the_check_that_needs_one(
    make_node, keystone_api, name
):
    """Not the service's fault: a warning, and it is judged on its version document."""
    node = make_node(name)
    answers_tokens(node, keystone_api, token_body=json.dumps({"token": {"user": {"id": "u"}}}))
    code, err = node.run("monitor", node.monitor_env(20))
    assert code == 0, err
    assert (
        "WARNING: depth-20 check skipped, keystone's token names no project id; judged on its "
        "version document"
    ) in err
    assert node.requests() == [("GET", "/")]


@pytest.mark.parametrize("name", ["nova-api", "glance-api", "neutron-server"])
def test_a_token_that_names_no_project_is_enough_for_a_path_without_one(
    make_node, keystone_api, name
):
    node = make_node(name)
    answers_tokens(node, keystone_api, token_body="{}")
    code, err = node.run("monitor", node.monitor_env(20))
    assert code == 0, err
    assert "skipped" not in err
    assert node.requests() == [("GET", "/"), ("GET", deep_path(name))]


def test_keystone_refusing_the_services_monitor_user_is_the_credentials_file(
    validating, keystone_api
):
    answers_tokens(validating, keystone_api)
    keystone_api.answers["POST", "/v3/auth/tokens"] = (401, {}, KEYSTONE_401)
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert (code, reason(err)) == (
        5,
        f"credentials file {validating.credentials}: keystone refused user monitor "
        "(domain Default, project service)",
    )
    assert validating.requests() == [("GET", "/")]


def test_keystone_failing_leaves_the_service_judged_on_its_version_document(
    validating, keystone_api
):
    """Restarting the service would not bring keystone back: a warning, and success."""
    answers_tokens(validating, keystone_api)
    keystone_api.answers["POST", "/v3/auth/tokens"] = (503, {}, "")
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 0, err
    warning = (
        f"depth-20 check skipped, no token from keystone: POST {keystone_api.url}/v3/auth/tokens "
        "answered 503 Service Unavailable; judged on its version document"
    )
    assert f"WARNING: {warning}\n" in err
    assert warning in validating.log()
    assert validating.requests() == [("GET", "/")]


def test_keystone_down_leaves_the_service_judged_on_its_version_document(validating):
    """The credentials' auth_url is a loopback port nothing listens on."""
    validating.running()
    validating.listen()
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 0, err
    assert "WARNING: depth-20 check skipped, no token from keystone: POST http://127.0.0.1:" in err
    assert "/v3/auth/tokens: Connection refused; judged on its version document" in err


def test_keystone_quoting_the_password_back_to_a_service_shows_it_nowhere(validating, keystone_api):
    answers_tokens(validating, keystone_api)
    message = f"Invalid input for field 'password': {PASSWORD!r} is too long"
    echo = json.dumps({"error": {"code": 400, "message": message}})
    keystone_api.answers["POST", "/v3/auth/tokens"] = (400, {}, echo)
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 0, err
    assert "answered 400 Bad Request: Invalid input for field 'password': \"***\" is too" in err


def test_a_broken_service_fails_depth_20_before_keystone_is_asked(validating, keystone_api):
    answers_tokens(validating, keystone_api)
    validating.answers["GET", "/"] = (500, {}, "")
    code, err = validating.run("monitor", validating.monitor_env(20))
    assert code == 1
    assert reason(err).endswith("GET / answered 500 Internal Server Error")
    assert keystone_api.requests == []


# -- slow is not dead: the monitor's budget ----------------------------------------------------


def slow(seconds, answer, clock=None):
    """An answer given after ``seconds``: of real time, or of ``clock``'s (the fake clock's
    time passes while the agent waits on a real socket)."""

    def answering():
        if clock is None:
            time.sleep(seconds)
        else:
            clock.sleep(seconds)
        return answer

    return answering


def test_nova_api_answering_depth_20_in_6_5_s_of_a_60_s_monitor_is_running(nova, keystone_api):
    """Issue 14: under load, GET /v2.1/flavors took ~6.5 s; the monitor gave up at 5 s (the old
    check_timeout) in a 60 s operation and Pacemaker restarted nova-api. Real time here."""
    answers_tokens(nova, keystone_api)
    nova.answers["GET", "/v2.1/flavors"] = slow(6.5, nova.answers["GET", "/v2.1/flavors"])
    env = nova.monitor_env(20, OCF_RESKEY_CRM_meta_timeout="60000")
    code, err = nova.run("monitor", env, clock=SystemClock())
    assert code == 0, err
    assert re.search(
        r"WARNING: GET /v2\.1/flavors answered after 6\.[5-9] s, slower than 5 s "
        r"\(budget 5[45] s\)",
        err,
    ), err


def test_an_answer_slower_than_check_timeout_is_logged_not_failed(keystone, fake_clock):
    """check_timeout is the threshold of a warning, no longer a limit."""
    node = keystone
    node.answers["GET", "/v3"] = slow(1.5, node.answers["GET", "/v3"], fake_clock)
    node.running()
    node.listen()
    env = node.monitor_env(10, OCF_RESKEY_check_timeout="1", OCF_RESKEY_CRM_meta_timeout="10000")
    code, err = node.run("monitor", env)
    assert code == 0, err
    assert (
        "WARNING: GET /v3 answered after 1.5 s, slower than 1 s (budget 8 s): slow, not failed"
    ) in node.log()


def test_a_hung_service_fails_inside_the_operation_timeout_naming_the_wait(keystone):
    """A peer that accepts TCP (the kernel completes the handshake) and never answers: the
    monitor of a 3 s operation gives up after its 1.5 s budget, 1.5 s kept to report."""
    node = keystone
    node.running()
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(1)
        port = hung.getsockname()[1]
        started = time.monotonic()
        code, err = node.run(
            "monitor",
            node.monitor_env(10, OCF_RESKEY_port=str(port), OCF_RESKEY_CRM_meta_timeout="3000"),
        )
        waited = time.monotonic() - started
    assert (code, reason(err)) == (
        1,
        f"{node.name}: GET http://127.0.0.1:{port}{node.version_path}: no answer within 1.5 s",
    )
    assert 1.4 < waited < 3


def test_depth_20s_requests_share_one_budget(nova, keystone_api, fake_clock):
    """The token took 54 s of the 55 s budget: GET /v2.1/flavors gets the 1 s left, not a
    budget of its own, and fails when it has no answer in that second."""
    answers_tokens(nova, keystone_api)
    token = keystone_api.answers["POST", "/v3/auth/tokens"]
    keystone_api.answers["POST", "/v3/auth/tokens"] = slow(54, token, fake_clock)
    nova.answers["GET", "/v2.1/flavors"] = slow(1.5, nova.answers["GET", "/v2.1/flavors"])
    env = nova.monitor_env(20, OCF_RESKEY_CRM_meta_timeout="60000")
    code, err = nova.run("monitor", env)
    assert (code, reason(err)) == (
        1,
        f"nova-api at http://127.0.0.1:{nova.port}: GET http://127.0.0.1:{nova.port}"
        "/v2.1/flavors: no answer within 1.0 s",
    )
    assert (
        f"WARNING: POST {keystone_api.url}/v3/auth/tokens answered after 54.0 s, slower than "
        "5 s (budget 55 s): slow, not failed"
    ) in err


# -- stop --------------------------------------------------------------------------------------


def signals(node):
    return [(pid, signum) for pid, signum, _ in node.processes.signals]


def test_stop_terminates_the_master_then_the_workers_it_left(node):
    node.running()
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert signals(node) == [(MASTER, signal.SIGTERM)] + [(w, signal.SIGTERM) for w in WORKERS]
    assert not node.pidfile.exists()
    assert f"{node.name} stopped" in node.log()


def test_a_master_that_ignores_term_is_killed_before_the_stop_timeout(node):
    """Its workers were listed before it died: once it is gone they are its no longer."""
    node.running()
    for pid in (MASTER, *WORKERS):
        node.processes.processes[pid].dies_on = {}  # SIGKILL still ends them
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert signals(node) == [
        (MASTER, signal.SIGTERM),
        (MASTER, signal.SIGKILL),
        (WORKERS[0], signal.SIGTERM),
        (WORKERS[0], signal.SIGKILL),
        (WORKERS[1], signal.SIGTERM),
        (WORKERS[1], signal.SIGKILL),
    ]
    times = [when - 1000.0 for _, _, when in node.processes.signals]
    # the master gets STOP_GRACE_S (10 s) after SIGTERM; each worker left 1 s
    assert times[:2] == [0.0, pytest.approx(10.0, abs=0.01)]
    assert times[3] - times[2] == pytest.approx(1.0, abs=0.01)
    assert all(when <= START_S for when in times)
    assert not node.pidfile.exists()


def test_a_master_that_survives_kill_fails_the_stop(node):
    node.running(workers=())
    node.processes.processes[MASTER].dies_on = {signal.SIGKILL: 1000.0}
    code, err = node.run("stop", node.env())
    assert (code, reason(err)) == (
        1,
        f"{node.name} master (pid {MASTER}) still running after SIGKILL",
    )


def unix_socket(path):
    """A UNIX socket left on disk by a server that died (bound, then closed)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
    return path


def test_stop_removes_a_stale_unix_socket_the_ini_names(node, tmp_path):
    sock = unix_socket(tmp_path / f"{node.name}.sock")
    node.ini.write_text(node.ini.read_text() + f"socket = {sock}\n")
    node.running()
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert not sock.exists() and not node.pidfile.exists()


def test_stop_of_a_stopped_service_cleans_up_and_succeeds(node, tmp_path):
    sock = unix_socket(tmp_path / f"{node.name}.sock")
    node.ini.write_text(node.ini.read_text() + f"socket = {sock}\n")
    node.pidfile.parent.mkdir(parents=True)
    node.pidfile.write_text(f"{MASTER}\n")  # no such process
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert node.processes.signals == []
    assert not sock.exists() and not node.pidfile.exists()


def test_stop_leaves_what_is_not_its_own_where_the_parameters_point(node, tmp_path):
    """Issue 15: a pidfile parameter naming a file that holds text, not a pid; a regular file
    where the ini names a socket; a listen file without this agent's header. Stop removes
    none of them."""
    text = tmp_path / "notes.txt"
    text.write_text("not a pid\n")
    listen = tmp_path / "notes.txt.listen.conf"
    listen.write_text("[DEFAULT]\nsomeone = else\n")
    sock = tmp_path / f"{node.name}.sock"
    sock.write_text("a regular file\n")
    node.ini.write_text(node.ini.read_text() + f"socket = {sock}\n")
    code, err = node.run("stop", node.env(OCF_RESKEY_pidfile=str(text)))
    assert code == 0, err
    assert text.read_text() == "not a pid\n"
    assert listen.read_text() == "[DEFAULT]\nsomeone = else\n"
    assert sock.read_text() == "a regular file\n"


def test_stop_with_a_directory_or_an_overlong_pidfile_succeeds_without_a_traceback(node, tmp_path):
    for pidfile in (str(tmp_path), "/tmp/" + "x" * 5000):
        code, err = node.run("stop", node.env(OCF_RESKEY_pidfile=pidfile))
        assert code == 0, err
        assert "Traceback" not in err
    assert tmp_path.is_dir()


def test_stop_of_a_service_that_never_ran_succeeds(node):
    code, err = node.run("stop", node.env())
    assert code == 0, err
    assert node.processes.signals == []


# -- reload-agent ------------------------------------------------------------------------------


def test_reload_agent_of_a_running_service_succeeds(node):
    node.running()
    code, err = node.run("reload-agent", node.env(OCF_RESKEY_check_timeout="10"))
    assert code == 0, err
    assert node.processes.signals == []


def test_reload_agent_of_a_stopped_service_is_not_running(node):
    code, err = node.run("reload-agent", node.env())
    assert (code, reason(err)) == (7, f"{node.name} is not running")
