"""The API services' knowledge without OCF (keystone, nova-api, placement-api, glance-api,
neutron-server, cinder-api): Debian's uwsgi files, listening addresses, how each is pointed at its
config file, version documents, HTTP against a real loopback server, credentials, Keystone tokens
and the deep check."""

import json
import socket

import pytest
from fakes import FakeHttpServer
from stackha.http_client import NotReachable
from stackha.services import api_catalog as catalog
from stackha.services import openstack_api as api
from stackha.services.openstack_api import ConfigError, CredentialsError

# /etc/keystone/keystone-uwsgi.ini of Debian 12's keystone 2:22.0.2-0+deb12u6, verbatim but for
# the comment blocks (trimmed). Note: no socket (the init script passes --http-socket :5000), no
# pidfile (start-stop-daemon --make-pidfile writes /var/run/keystone/keystone.pid), and
# "listen = 100" is the accept queue, not an address.
KEYSTONE_INI = """\
[uwsgi]
############################
### Generic UWSGI config ###
############################

# Override the default size for headers from the 4k default.
buffer-size = 65535

# This avoids error 104: "Connection reset by peer"
rem-header = Content-Length

# This is running standalone
master = true

# uwsgi recommends this to prevent thundering herd on accept.
thunder-lock = true

# Default plugins to load
plugins = python3,apparmor

# We do have a keystone apparmor profile in this package,
# so let's use it.
apparmor-profile = keystone

# This ensures that file descriptors aren't shared between the WSGI application processes.
lazy-apps = true

# Log from the wsgi application: needs python3-pastescript as runtime depends.
paste-logger = true

# automatically kill workers if master dies
no-orphans = true

# exit instead of brutal reload on SIGTERM
die-on-term = true

##########################
### Performance tuning ###
##########################
# Threads and processes
enable-threads = true

# For max perf, set this to number of core*2
processes = 8

# This was benchmarked as a good value
threads = 32

# This is the number of sockets in the queue.
# It improves a lot performances. This is comparable
# to the Apache ServerLimit/MaxClients option.
listen = 100

##################################
### OpenStack service specific ###
##################################
# This is the standard port for the WSGI application, listening on all available IPs
logto = /var/log/keystone/keystone.log
name = keystone-api
uid = keystone
gid = keystone
chdir = /var/lib/keystone
wsgi-file = /usr/bin/keystone-wsgi-public

# This is controled by the init script using the --http-socket
# or using the --https thing. https will be activated if a file
# /etc/keystone/ssl/private/*.pem is found. In both case, port 9292
# on all IPs will be used.
#http-socket = :5000
#https-socket = 0.0.0.0:5000,foobar.crt,foobar.key
"""

# /etc/nova/nova-api-uwsgi.ini of Debian 12's nova-api 2:26.2.2-1~deb12u5, comments trimmed.
NOVA_API_INI = """\
[uwsgi]
buffer-size = 65535
rem-header = Content-Length
master = true
enable-threads = true
thunder-lock = true
plugins = python3
lazy-apps = true
paste-logger = true
no-orphans = true
die-on-term = true
enable-threads = true
processes = 16
threads = 1
listen = 100
logto = /var/log/nova/nova-api.log
name = nova-api
uid = nova
gid = nova
chdir = /var/lib/nova
wsgi-file = /usr/bin/nova-api-wsgi
#http-socket = :8774
#https-socket = 0.0.0.0:8774,foobar.crt,foobar.key
"""

# What the reference lab ran (services-in-namespaces.md §6): Debian's file, trimmed, with a
# socket and a pid file of its own.
LAB_INI = """\
[uwsgi]
http-socket = 0.0.0.0:5000
pidfile = /run/keystone/uwsgi.pid
plugins = python3
rem-header = Content-Length
buffer-size = 65535
master = true
lazy-apps = true
die-on-term = true
processes = 2
threads = 2
uid = keystone
gid = keystone
chdir = /var/lib/keystone
wsgi-file = /usr/bin/keystone-wsgi-public
"""


def debian_api_ini(user: str, name: str, wsgi_file: str, extra: str = "") -> str:
    """The [uwsgi] section Debian's openstack-pkg-tools writes for an API service (Debian 12's
    placement-api 8.0.0-2, glance-api 2:25.1.0-2+deb12u5, neutron-api 2:21.0.0-7+deb12u1,
    cinder-api 2:21.3.1-1~deb12u1), trimmed to the options these tests read. No socket: the
    init scripts pass --http-socket."""
    return (
        "[uwsgi]\nmaster = true\nplugins = python3\nlazy-apps = true\ndie-on-term = true\n"
        f"processes = 8\nthreads = 32\n{extra}logto = /var/log/{user}/{name}.log\n"
        f"uid = {user}\ngid = {user}\nchdir = /var/lib/{user}\nwsgi-file = {wsgi_file}\n"
    )


PLACEMENT_API_INI = debian_api_ini("placement", "placement-api", "/usr/bin/placement-api")
GLANCE_API_INI = debian_api_ini("glance", "glance-api", "/usr/bin/glance-wsgi-api")
# neutron's loads its paste pipeline through uwsgi's own paste option as well
NEUTRON_API_INI = debian_api_ini(
    "neutron", "neutron-api", "/usr/bin/neutron-api", "paste = config:/etc/neutron/api-paste.ini\n"
)
CINDER_API_INI = debian_api_ini("cinder", "cinder-api", "/usr/bin/cinder-wsgi")


# -- the uwsgi ini file ------------------------------------------------------------------------


def test_debian_keystone_ini_listens_where_the_init_script_says():
    """Debian's file has no socket: the --http-socket the init script adds is the listener."""
    config = api.parse_uwsgi_ini(KEYSTONE_INI, "/etc/keystone/keystone-uwsgi.ini", ":5000")
    assert config.http_listener == api.Listener("http-socket", ":5000", "http", "", 5000, False)
    assert config.listeners == (config.http_listener,)
    assert config.http_listener.url() == "http://127.0.0.1:5000"
    assert config.pidfile is None
    assert config.master is True
    assert (config.processes, config.threads) == (8, 32)
    assert (config.uid, config.gid) == ("keystone", "keystone")
    assert config.wsgi_file == "/usr/bin/keystone-wsgi-public" and config.module is None
    assert config.logto == "/var/log/keystone/keystone.log"
    assert config.chdir == "/var/lib/keystone"
    assert config.plugins == ("python3", "apparmor")
    assert config.options["rem-header"] == ("Content-Length",)
    assert config.options["listen"] == ("100",)


def test_debian_nova_api_ini():
    config = api.parse_uwsgi_ini(NOVA_API_INI, "/etc/nova/nova-api-uwsgi.ini", ":8774")
    assert (config.http_listener.host, config.http_listener.port) == ("", 8774)
    assert (config.processes, config.threads) == (16, 1)
    assert (config.uid, config.wsgi_file) == ("nova", "/usr/bin/nova-api-wsgi")
    assert config.options["enable-threads"] == ("true", "true")


def test_debian_ini_without_a_command_line_socket_is_an_error_naming_the_file():
    with pytest.raises(ConfigError, match=r"^/etc/keystone/keystone-uwsgi.ini declares no listen"):
        api.parse_uwsgi_ini(KEYSTONE_INI, "/etc/keystone/keystone-uwsgi.ini")


@pytest.mark.parametrize(
    ("text", "path", "port", "user", "wsgi_file"),
    [
        (
            PLACEMENT_API_INI,
            "/etc/placement/placement-api-uwsgi.ini",
            8778,
            "placement",
            "/usr/bin/placement-api",
        ),
        (
            GLANCE_API_INI,
            "/etc/glance/glance-api-uwsgi.ini",
            9292,
            "glance",
            "/usr/bin/glance-wsgi-api",
        ),
        (
            NEUTRON_API_INI,
            "/etc/neutron/neutron-api-uwsgi.ini",
            9696,
            "neutron",
            "/usr/bin/neutron-api",
        ),
        (
            CINDER_API_INI,
            "/etc/cinder/cinder-api-uwsgi.ini",
            8776,
            "cinder",
            "/usr/bin/cinder-wsgi",
        ),
    ],
    ids=["placement-api", "glance-api", "neutron-api", "cinder-api"],
)
def test_debian_ini_of_placement_glance_neutron_cinder(text, path, port, user, wsgi_file):
    config = api.parse_uwsgi_ini(text, path, f":{port}")
    assert config.listeners == (api.Listener("http-socket", f":{port}", "http", "", port, False),)
    assert (config.processes, config.threads) == (8, 32)
    assert (config.uid, config.gid, config.wsgi_file) == (user, user, wsgi_file)
    assert config.logto.startswith(f"/var/log/{user}/")
    assert config.pidfile is None and config.daemonize is None


def test_a_socket_in_the_file_wins_over_the_command_line_default():
    config = api.parse_uwsgi_ini(LAB_INI, "/etc/keystone/keystone-uwsgi-lab.ini", ":5001")
    assert config.listeners == (
        api.Listener("http-socket", "0.0.0.0:5000", "http", "0.0.0.0", 5000, True),
    )
    assert config.http_listener.url() == "http://127.0.0.1:5000"
    assert config.pidfile == "/run/keystone/uwsgi.pid"
    assert (config.processes, config.threads) == (2, 2)


def test_the_last_value_of_a_repeated_option_wins():
    """Debian's nova-api-metadata-uwsgi.ini says processes = 4 and, further down, processes = 8."""
    config = api.parse_uwsgi_ini("[uwsgi]\nprocesses = 4\nhttp = :8775\nworkers = 8\n")
    assert config.processes == 8


def test_every_socket_is_kept_and_the_first_http_one_is_probed():
    text = (
        "[uwsgi]\n"
        "socket = /run/keystone/uwsgi.sock\n"
        "uwsgi-socket = 127.0.0.1:3031\n"
        "https-socket = [::]:5000,/etc/keystone/ssl/public/k.crt,/etc/keystone/ssl/private/k.pem\n"
        "http = 10.0.0.5:5001\n"
    )
    config = api.parse_uwsgi_ini(text, "k.ini", ":5000")
    assert [(lst.option, lst.scheme, lst.host, lst.port) for lst in config.listeners] == [
        ("socket", "uwsgi", "/run/keystone/uwsgi.sock", 0),
        ("uwsgi-socket", "uwsgi", "127.0.0.1", 3031),
        ("https-socket", "https", "::", 5000),
        ("http", "http", "10.0.0.5", 5001),
    ]
    assert config.listeners[0].is_unix
    assert config.http_listener.url() == "https://[::1]:5000"


def test_a_default_socket_speaks_http_when_protocol_says_so():
    config = api.parse_uwsgi_ini("[uwsgi]\nsocket = :8774\nprotocol = http\n")
    assert config.http_listener.scheme == "http"


def test_only_a_uwsgi_protocol_socket_is_an_error_saying_so():
    with pytest.raises(ConfigError, match=r"^n.ini has no TCP socket that speaks HTTP \(socket = "):
        api.parse_uwsgi_ini("[uwsgi]\nsocket = 127.0.0.1:3031\n", "n.ini")


def test_only_a_uwsgi_protocol_socket_gets_the_command_line_default():
    """uwsgi binds both, so the agent adds --http-socket and probes that."""
    config = api.parse_uwsgi_ini("[uwsgi]\nsocket = /run/nova/api.sock\n", "n.ini", ":8774")
    assert [lst.from_file for lst in config.listeners] == [True, False]
    assert config.http_listener.port == 8774


def test_placeholders_and_magic_variables_are_expanded():
    text = (
        "[uwsgi]\n"
        "set-ph = bind=127.0.0.1\n"
        "port = 5000\n"
        "http-socket = %(bind):%(port)\n"
        "pidfile = /run/%n/uwsgi.pid\n"
        "logto = %dlogs/%n.log\n"
        "procname = 100%%\n"
    )
    config = api.parse_uwsgi_ini(text, "/etc/keystone/keystone.ini")
    assert (config.http_listener.host, config.http_listener.port) == ("127.0.0.1", 5000)
    assert config.pidfile == "/run/keystone/uwsgi.pid"
    assert config.logto == "/etc/keystone/logs/keystone.log"
    assert config.options["procname"] == ("100%",)


def test_a_placeholder_left_in_a_socket_is_an_error():
    with pytest.raises(ConfigError, match=r"k.ini: http-socket = :\$\(PORT\): a placeholder"):
        api.parse_uwsgi_ini("[uwsgi]\nhttp-socket = :$(PORT)\n", "k.ini")
    with pytest.raises(ConfigError, match=r"http-socket = :%\(port\): a placeholder"):
        api.parse_uwsgi_ini("[uwsgi]\nhttp-socket = :%(port)\n", "k.ini")


def test_flags_follow_uwsgi():
    """uwsgi_opt_true: a bare option or any value but false/off/no/0 switches it on."""
    assert api.parse_uwsgi_ini("[uwsgi]\nhttp = :1\nmaster\n").master is True
    assert api.parse_uwsgi_ini("[uwsgi]\nhttp = :1\nmaster = 1\n").master is True
    assert api.parse_uwsgi_ini("[uwsgi]\nhttp = :1\nmaster = Off\n").master is False
    assert api.parse_uwsgi_ini("[uwsgi]\nhttp = :1\n").master is False


def test_only_the_uwsgi_section_counts():
    text = "[other]\nhttp-socket = :1\n[uwsgi]\nhttp-socket = :5000\n[more]\nprocesses = 9\n"
    config = api.parse_uwsgi_ini(text)
    assert config.http_listener.port == 5000 and config.processes == 1


@pytest.mark.parametrize(
    "text",
    ["", "# nothing\n", "[keystone]\nhttp-socket = :5000\n", "[uwsgi]\n# all commented\n"],
    ids=["empty", "comment", "other-section", "empty-section"],
)
def test_a_file_without_a_uwsgi_section_is_an_error_naming_the_file(text):
    with pytest.raises(ConfigError, match=r"^/etc/k.ini has no \[uwsgi\] section"):
        api.parse_uwsgi_ini(text, "/etc/k.ini")


def test_a_bad_socket_address_is_an_error_naming_file_and_line():
    with pytest.raises(ConfigError, match=r"^k.ini: http-socket: :http: port 'http' is not"):
        api.parse_uwsgi_ini("[uwsgi]\nhttp-socket = :http\n", "k.ini")
    with pytest.raises(ConfigError, match=r"^--http-socket: :99999: port "):
        api.parse_uwsgi_ini(KEYSTONE_INI, "k.ini", ":99999")


def test_a_count_that_is_not_a_number_is_an_error():
    with pytest.raises(ConfigError, match=r"^k.ini: processes = eight is not a number"):
        api.parse_uwsgi_ini("[uwsgi]\nhttp = :1\nprocesses = eight\n", "k.ini")


def test_read_uwsgi_ini_reads_the_file_and_names_it_when_it_cannot(tmp_path):
    path = tmp_path / "keystone-uwsgi.ini"
    path.write_text(KEYSTONE_INI)
    assert api.read_uwsgi_ini(str(path), ":5000").wsgi_file == "/usr/bin/keystone-wsgi-public"
    with pytest.raises(ConfigError, match=f"^uwsgi ini {tmp_path}/absent.ini: No such file"):
        api.read_uwsgi_ini(str(tmp_path / "absent.ini"))


# -- listening addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        (":5000", ("", 5000)),
        ("0.0.0.0:5000", ("0.0.0.0", 5000)),
        ("[::]:8774", ("::", 8774)),
        ("127.0.0.1:8774", ("127.0.0.1", 8774)),
        ("[fd00::11]:5000", ("fd00::11", 5000)),
        ("controller1:5000", ("controller1", 5000)),
        ("0.0.0.0:5000,foobar.crt,foobar.key", ("0.0.0.0", 5000)),
        (" :8774 ", ("", 8774)),
    ],
)
def test_listen_endpoint(text, endpoint):
    assert api.listen_endpoint(text) == endpoint


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the address is empty"),
        ("/run/keystone.sock", "is not a TCP address"),
        ("@keystone", "is not a TCP address"),
        ("=0", "is not a TCP address"),
        ("5000", "is not a TCP address"),
        (":0", "is not a port number"),
        (":65536", "is not a port number"),
        ("127.0.0.1:", "is not a port number"),
        ("[::]", r"\[IPv6\]:port"),
        ("[::1]5000", r"\[IPv6\]:port"),
        ("::1:5000", "needs brackets"),
    ],
)
def test_listen_endpoint_refuses_what_is_not_host_and_port(text, problem):
    with pytest.raises(ConfigError, match=problem):
        api.listen_endpoint(text)


@pytest.mark.parametrize(
    ("host", "probe"),
    [
        ("", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("*", "127.0.0.1"),
        ("::", "::1"),
        ("192.168.78.11", "192.168.78.11"),
        ("::1", "::1"),
    ],
)
def test_probe_host_reaches_a_wildcard_bind_over_loopback(host, probe):
    assert api.probe_host(host) == probe


def test_endpoint_url_brackets_ipv6():
    assert api.endpoint_url("::1", 8774) == "http://[::1]:8774"
    assert api.endpoint_url("127.0.0.1", 5000, "https") == "https://127.0.0.1:5000"


# -- version documents -------------------------------------------------------------------------

# keystone 22 GET /v3 (keystone/api/discovery.py), as the reference lab got it
KEYSTONE_V3 = json.dumps(
    {
        "version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": "http://192.168.78.11:5000/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }
    }
)
# nova 26 GET / (nova/api/openstack/compute/versions.py; its api-samples versions-get-resp)
NOVA_ROOT = json.dumps(
    {
        "versions": [
            {
                "id": "v2.0",
                "links": [{"href": "http://192.168.78.11:8774/v2/", "rel": "self"}],
                "status": "SUPPORTED",
                "version": "",
                "min_version": "",
                "updated": "2011-01-21T11:33:21Z",
            },
            {
                "id": "v2.1",
                "links": [{"href": "http://192.168.78.11:8774/v2.1/", "rel": "self"}],
                "status": "CURRENT",
                "version": "2.93",
                "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
            },
        ]
    }
)
# nova's Versions.multi: 300 Multiple Choices, for a path other than "/"
NOVA_CHOICES = json.dumps(
    {
        "choices": [
            {"id": "v2.0", "status": "SUPPORTED", "links": [], "media-types": []},
            {"id": "v2.1", "status": "CURRENT", "links": [], "media-types": []},
        ]
    }
)


# placement 8 GET / (placement/handlers/root.py): one version and its microversion range
PLACEMENT_ROOT = json.dumps(
    {
        "versions": [
            {
                "id": "v1.0",
                "max_version": "1.39",
                "min_version": "1.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": ""}],
            }
        ]
    }
)


def glance_versions(minors):
    """glance 25 GET / (glance/api/versions.py, index with explicit=False): 300 Multiple
    Choices; the first version CURRENT, the others SUPPORTED."""
    return json.dumps(
        {
            "versions": [
                {
                    "id": f"v2.{minor}",
                    "status": "SUPPORTED" if index else "CURRENT",
                    "links": [{"rel": "self", "href": "http://192.168.213.100:9292/v2/"}],
                }
                for index, minor in enumerate(minors)
            ]
        }
    )


# with an image cache (image_cache_dir) and no enabled_backends, as the lab runs it; without
GLANCE_VERSIONS = glance_versions([16, 15, 14, 9, 7, 6, 5, 4, 3, 2, 1, 0])
GLANCE_VERSIONS_NO_CACHE = glance_versions([15, 9, 7, 6, 5, 4, 3, 2, 1, 0])
# neutron 21 GET / (neutron/pecan_wsgi/controllers/root.py, neutron/api/views/versions.py)
NEUTRON_ROOT = json.dumps(
    {
        "versions": [
            {
                "id": "v2.0",
                "status": "CURRENT",
                "links": [{"rel": "self", "href": "http://192.168.213.11:9696/v2.0/"}],
            }
        ]
    }
)
# cinder 21 GET / (cinder/api/versions.py, Versions.all: 300 Multiple Choices)
CINDER_VERSIONS = json.dumps(
    {
        "versions": [
            {
                "id": "v3.0",
                "status": "CURRENT",
                "version": "3.70",
                "min_version": "3.0",
                "updated": "2022-08-31T00:00:00Z",
                "links": [
                    {
                        "rel": "describedby",
                        "type": "text/html",
                        "href": "https://docs.openstack.org/",
                    },
                    {"rel": "self", "href": "http://192.168.213.11:8776/v3/"},
                ],
                "media-types": [
                    {
                        "base": "application/json",
                        "type": "application/vnd.openstack.volume+json;version=3",
                    }
                ],
            }
        ]
    }
)


def test_healthy_version_documents():
    assert api.version_document_ok(200, KEYSTONE_V3, catalog.KEYSTONE) is None
    assert api.version_document_ok(200, NOVA_ROOT, catalog.NOVA_API) is None
    assert api.version_document_ok(300, NOVA_CHOICES, catalog.NOVA_API) is None


@pytest.mark.parametrize(
    ("status", "body", "service", "problem"),
    [
        (503, "", "keystone", "GET /v3 answered 503 Service Unavailable"),
        (500, "Internal Server Error", "nova-api", "GET / answered 500 Internal Server Error"),
        (401, "{}", "nova-api", "GET / answered 401 Unauthorized"),
        (300, KEYSTONE_V3, "keystone", "GET /v3 answered 300 Multiple Choices"),
        (599, "", "keystone", "GET /v3 answered 599"),
        (200, "<html>It works!</html>", "keystone", "GET /v3 answered 200 OK but not JSON"),
        (200, NOVA_ROOT, "keystone", "GET /v3 answered 200 OK without a v3 version document"),
        (200, KEYSTONE_V3, "nova-api", "GET / answered 200 OK without a v2.1 version document"),
        (200, "[]", "nova-api", "GET / answered 200 OK without a v2.1 version document"),
    ],
)
def test_unhealthy_answers_name_the_status(status, body, service, problem):
    assert api.version_document_ok(status, body, catalog.service_named(service)) == problem


@pytest.mark.parametrize(
    ("status", "body", "service"),
    [
        (200, PLACEMENT_ROOT, "placement-api"),
        (300, GLANCE_VERSIONS, "glance-api"),
        (300, GLANCE_VERSIONS_NO_CACHE, "glance-api"),
        # GET /versions: the same list, 200
        (200, GLANCE_VERSIONS, "glance-api"),
        (200, NEUTRON_ROOT, "neutron-server"),
        (300, CINDER_VERSIONS, "cinder-api"),
    ],
)
def test_healthy_version_documents_of_placement_glance_neutron_cinder(status, body, service):
    assert api.version_document_ok(status, body, catalog.service_named(service)) is None


@pytest.mark.parametrize(
    ("status", "body", "service", "problem"),
    [
        # placement and neutron answer GET / with 200 only
        (300, PLACEMENT_ROOT, "placement-api", "GET / answered 300 Multiple Choices"),
        (300, NEUTRON_ROOT, "neutron-server", "GET / answered 300 Multiple Choices"),
        (
            200,
            NEUTRON_ROOT,
            "placement-api",
            "GET / answered 200 OK without a v1.0 version document",
        ),
        (
            200,
            PLACEMENT_ROOT,
            "neutron-server",
            "GET / answered 200 OK without a v2.0 version document",
        ),
        (
            300,
            CINDER_VERSIONS,
            "glance-api",
            "GET / answered 300 Multiple Choices without a v2 version document",
        ),
        (
            300,
            GLANCE_VERSIONS,
            "cinder-api",
            "GET / answered 300 Multiple Choices without a v3 version document",
        ),
        (200, NOVA_ROOT, "cinder-api", "GET / answered 200 OK without a v3 version document"),
        (404, "", "glance-api", "GET / answered 404 Not Found"),
        (503, CINDER_VERSIONS, "cinder-api", "GET / answered 503 Service Unavailable"),
    ],
)
def test_unhealthy_answers_of_placement_glance_neutron_cinder(status, body, service, problem):
    assert api.version_document_ok(status, body, catalog.service_named(service)) == problem


def test_an_unknown_service_is_an_error():
    with pytest.raises(catalog.UnknownService, match="unknown API service 'glance'"):
        catalog.service_named("glance")


@pytest.fixture
def fake_api():
    server = FakeHttpServer()
    yield server
    server.close()


# -- credentials and tokens --------------------------------------------------------------------

PASSWORD = "pa55=w0rd 'secret'"


def write(tmp_path, text, name="credentials.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_read_credentials(tmp_path):
    path = write(
        tmp_path,
        "# monitoring user\n"
        "auth_url = http://192.168.78.10:5000/v3\n"
        "username=monitor\n"
        f"password = {PASSWORD}\n"
        "project_name=service\n"
        "user_domain_name=Monitoring\n"
        "region_name=RegionOne\n",
    )
    credentials = api.read_openstack_credentials(path)
    assert credentials == api.Credentials(
        "http://192.168.78.10:5000/v3", "monitor", PASSWORD, "service", "Monitoring", "Default"
    )


def test_read_credentials_from_an_openrc_file(tmp_path):
    path = write(
        tmp_path,
        "export OS_PROJECT_DOMAIN_NAME=Default\n"
        "export OS_USER_DOMAIN_NAME=Default\n"
        "export OS_PROJECT_NAME=admin\n"
        "export OS_USERNAME=admin\n"
        "export OS_PASSWORD='adminpass'\n"
        "export OS_AUTH_URL=http://controller:5000/v3\n"
        "export OS_IDENTITY_API_VERSION=3\n",
        "admin-openrc",
    )
    credentials = api.read_openstack_credentials(path)
    assert (credentials.username, credentials.password) == ("admin", "adminpass")
    assert credentials.auth_url == "http://controller:5000/v3"


def test_missing_keys_are_named_and_no_value_is_shown(tmp_path):
    path = write(tmp_path, f"username=monitor\npassword={PASSWORD}\nproject_name=\n")
    with pytest.raises(CredentialsError) as caught:
        api.read_openstack_credentials(path)
    assert str(caught.value) == f"credentials file {path} lacks auth_url, project_name"
    assert "monitor" not in str(caught.value)


def test_an_auth_url_that_is_not_http_is_refused_without_showing_it(tmp_path):
    path = write(tmp_path, f"auth_url={PASSWORD}\nusername=u\npassword=p\nproject_name=p\n")
    with pytest.raises(CredentialsError, match="auth_url is not an http") as caught:
        api.read_openstack_credentials(path)
    assert PASSWORD not in str(caught.value)


def test_a_file_that_cannot_be_read_is_a_credentials_error(tmp_path):
    """The reader's own error becomes this service's, which its agent maps to an exit code."""
    with pytest.raises(CredentialsError, match=f"^credentials file {tmp_path}/none: No such"):
        api.read_openstack_credentials(str(tmp_path / "none"))


def test_the_repr_of_credentials_hides_the_password():
    credentials = api.Credentials("http://k:5000/v3", "monitor", PASSWORD, "service")
    assert PASSWORD not in repr(credentials) and "password='***'" in repr(credentials)


def test_token_request_body_is_keystone_v3_password_auth():
    credentials = api.Credentials("http://k:5000/v3", "monitor", PASSWORD, "service", "Mon", "Ops")
    assert api.token_request_body(credentials) == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "monitor", "domain": {"name": "Mon"}, "password": PASSWORD}
                },
            },
            "scope": {"project": {"name": "service", "domain": {"name": "Ops"}}},
        }
    }


@pytest.mark.parametrize(
    ("auth_url", "url"),
    [
        ("http://controller:5000/v3", "http://controller:5000/v3/auth/tokens"),
        ("http://controller:5000/v3/", "http://controller:5000/v3/auth/tokens"),
        ("http://controller:5000/", "http://controller:5000/v3/auth/tokens"),
        ("https://cloud.example/identity", "https://cloud.example/identity/v3/auth/tokens"),
        ("https://cloud.example/identity/v3", "https://cloud.example/identity/v3/auth/tokens"),
    ],
)
def test_token_url(auth_url, url):
    assert api.token_url(auth_url) == url


def test_a_keystone_v2_auth_url_is_refused():
    with pytest.raises(CredentialsError, match="Keystone v2.0, which was removed"):
        api.token_url("http://controller:5000/v2.0")


def credentials_for(server, password=PASSWORD):
    return api.Credentials(server.url + "/v3", "monitor", password, "service")


def test_issue_token_posts_the_request_and_returns_the_subject_token(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, "{}")
    credentials = credentials_for(fake_api)
    assert api.issue_token(credentials, 1.0) == "gAAAAABn"
    _, path, _, body = fake_api.requests[0]
    assert path == "/v3/auth/tokens"
    assert json.loads(body) == api.token_request_body(credentials)


SERVICE_PROJECT_ID = "5d3f0a6c2b8e4f7a9c1d2e3f4a5b6c7d"
# keystone 22 POST /v3/auth/tokens scoped to a project, trimmed (keystone/api/auth.py)
PROJECT_TOKEN = json.dumps(
    {
        "token": {
            "methods": ["password"],
            "user": {
                "domain": {"id": "default", "name": "Default"},
                "id": "9a1b",
                "name": "monitor",
            },
            "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
            "expires_at": "2026-12-05T07:00:00.000000Z",
            "issued_at": "2026-12-05T06:00:00.000000Z",
            "project": {
                "domain": {"id": "default", "name": "Default"},
                "id": SERVICE_PROJECT_ID,
                "name": "service",
            },
            "is_domain": False,
            "roles": [{"id": "4e1c", "name": "reader"}],
            "catalog": [],
        }
    }
)


def test_issue_project_token_gives_the_token_and_its_projects_id(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (
        201,
        {"X-Subject-Token": "gAAAAABn"},
        PROJECT_TOKEN,
    )
    token = api.issue_project_token(credentials_for(fake_api), 1.0)
    assert token == api.Token("gAAAAABn", SERVICE_PROJECT_ID)


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        "",
        "not JSON",
        "[]",
        '{"token": []}',
        '{"token": {"project": "service"}}',
        '{"token": {"project": {"id": 7}}}',
        # a domain-scoped token names no project
        '{"token": {"domain": {"id": "default", "name": "Default"}}}',
    ],
)
def test_a_token_answer_without_a_project_id_gives_an_empty_one(fake_api, body):
    """The token itself is good: a service whose check needs the project says so."""
    fake_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, body)
    assert api.issue_project_token(credentials_for(fake_api), 1.0) == api.Token("gAAAAABn", "")
    assert api.issue_token(credentials_for(fake_api), 1.0) == "gAAAAABn"


KEYSTONE_401 = json.dumps(
    {
        "error": {
            "code": 401,
            "title": "Unauthorized",
            "message": "The request you have made requires authentication.",
        }
    }
)


def test_a_refused_user_is_a_credentials_error(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (401, {}, KEYSTONE_401)
    with pytest.raises(CredentialsError) as caught:
        api.issue_token(credentials_for(fake_api), 1.0)
    assert str(caught.value) == ("keystone refused user monitor (domain Default, project service)")


@pytest.mark.parametrize("password", [PASSWORD, "C:\\pa'ss\"word"], ids=["quotes", "escapes"])
def test_another_status_is_named_with_keystones_reason_without_the_password(fake_api, password):
    """With insecure_debug, Keystone's validation errors quote the request: the password is
    masked, as sent and as a Python repr."""
    message = f"bad {password}! {password!r} is not of type 'object'"
    echo = {"error": {"code": 400, "title": "Bad Request", "message": message}}
    fake_api.answers["POST", "/v3/auth/tokens"] = (400, {}, json.dumps(echo))
    with pytest.raises(api.OpenStackApiError) as caught:
        api.issue_token(credentials_for(fake_api, password), 1.0)
    shown = str(caught.value)
    assert shown.startswith(
        f"POST {fake_api.url}/v3/auth/tokens answered 400 Bad Request: bad ***!"
    )
    assert not any(part in shown for part in ("pa55", "secret", "pa'ss", "word"))


def test_a_server_error_is_named(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (503, {}, "<html>busy</html>")
    with pytest.raises(api.OpenStackApiError, match="answered 503 Service Unavailable$"):
        api.issue_token(credentials_for(fake_api), 1.0)


def test_created_without_a_token_is_an_error(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (201, {}, "{}")
    with pytest.raises(api.OpenStackApiError, match="201 without an X-Subject-Token"):
        api.issue_token(credentials_for(fake_api), 1.0)


def test_no_keystone_is_not_reachable_without_the_password(closed_port):
    credentials = api.Credentials(f"http://127.0.0.1:{closed_port}/v3", "monitor", PASSWORD, "p")
    with pytest.raises(NotReachable) as caught:
        api.issue_token(credentials, 1.0)
    assert str(caught.value) == (
        f"POST http://127.0.0.1:{closed_port}/v3/auth/tokens: Connection refused"
    )
    assert PASSWORD not in str(caught.value)


# -- how a service is started ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "address"),
    [
        ("192.0.2.7", 5000, "192.0.2.7:5000"),
        ("", 8774, ":8774"),
        ("::1", 5000, "[::1]:5000"),
        ("2001:db8::7", 8774, "[2001:db8::7]:8774"),
    ],
)
def test_socket_address_is_what_uwsgi_takes(host, port, address):
    assert api.socket_address(host, port) == address


def test_a_socket_address_reads_back_as_the_same_endpoint():
    """What the agent passes as --http-socket is what the ini reader takes from a file."""
    for host in ("192.0.2.7", "", "::1"):
        assert api.listen_endpoint(api.socket_address(host, 5000)) == (host, 5000)


def test_the_environment_points_each_application_at_its_config_file():
    assert api.service_environment(catalog.KEYSTONE, "/etc/keystone/keystone.conf") == {
        "OS_KEYSTONE_CONFIG_DIR": "/etc/keystone",
        "OS_KEYSTONE_CONFIG_FILES": "keystone.conf",
    }
    assert api.service_environment(catalog.NOVA_API, "/srv/nova/nova-api.conf") == {
        "OS_NOVA_CONFIG_DIR": "/srv/nova",
        # the paste pipeline is read from the first file: nova answered 500 to everything
        # with nova.conf alone
        "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova-api.conf",
    }


def test_nova_reads_api_paste_ini_beside_its_config():
    assert api.companion_files(catalog.NOVA_API, "/srv/nova/nova-api.conf") == [
        "/srv/nova/api-paste.ini"
    ]
    assert api.companion_files(catalog.KEYSTONE, "/etc/keystone/keystone.conf") == []


def test_a_relative_config_path_becomes_absolute(tmp_path, monkeypatch):
    """The service runs in /, not in the agent's directory."""
    monkeypatch.chdir(tmp_path)
    assert api.service_environment(catalog.KEYSTONE, "conf/keystone.conf") == {
        "OS_KEYSTONE_CONFIG_DIR": f"{tmp_path}/conf",
        "OS_KEYSTONE_CONFIG_FILES": "keystone.conf",
    }


def test_placement_glance_and_neutron_are_pointed_at_their_config_through_the_environment():
    assert api.service_environment(catalog.PLACEMENT_API, "/srv/placement/placement.conf") == {
        "OS_PLACEMENT_CONFIG_DIR": "/srv/placement"
    }
    assert api.service_environment(catalog.GLANCE_API, "/srv/glance/glance-api.conf") == {
        "OS_GLANCE_CONFIG_DIR": "/srv/glance"
    }
    # the ML2 plugin's file after the service's own, as Debian's init script passes them
    assert api.service_environment(catalog.NEUTRON_SERVER, "/srv/neutron/site.conf") == {
        "OS_NEUTRON_CONFIG_DIR": "/srv/neutron",
        "OS_NEUTRON_CONFIG_FILES": "site.conf;plugins/ml2/ml2_conf.ini",
    }
    # cinder reads its arguments, not its environment (uwsgi_pyargv)
    assert api.service_environment(catalog.CINDER_API, "/srv/cinder/cinder.conf") == {}


def test_the_files_each_service_reads_beside_its_config():
    assert api.companion_files(catalog.PLACEMENT_API, "/srv/p/placement.conf") == []
    assert api.companion_files(catalog.GLANCE_API, "/srv/g/glance-api.conf") == [
        "/srv/g/glance-api-paste.ini"
    ]
    assert api.companion_files(catalog.NEUTRON_SERVER, "/srv/n/neutron.conf") == [
        "/srv/n/plugins/ml2/ml2_conf.ini",
        "/srv/n/api-paste.ini",
    ]
    assert api.companion_files(catalog.CINDER_API, "/srv/c/cinder.conf") == ["/srv/c/api-paste.ini"]


@pytest.mark.parametrize(
    ("service", "config", "problem"),
    [
        (catalog.PLACEMENT_API, "/srv/placement/placement.conf", None),
        (
            catalog.PLACEMENT_API,
            "/srv/placement/placement-api.conf",
            "config = /srv/placement/placement-api.conf: placement-api reads placement.conf "
            "from the directory it is given; name the file so",
        ),
        (catalog.GLANCE_API, "/srv/my glance/glance-api.conf", None),
        (
            catalog.GLANCE_API,
            "/etc/glance/glance.conf",
            "config = /etc/glance/glance.conf: glance-api reads glance-api.conf from the "
            "directory it is given; name the file so",
        ),
        (catalog.KEYSTONE, "/srv/keystone/site.conf", None),
        (catalog.NOVA_API, "/srv/my nova/site.conf", None),
        (catalog.NEUTRON_SERVER, "/srv/my neutron/site.conf", None),
        (catalog.CINDER_API, "/srv/cinder/site.conf", None),
        (
            catalog.CINDER_API,
            "/srv/my cinder/cinder.conf",
            "config = '/srv/my cinder/cinder.conf': uwsgi passes it on a --pyargv, which a "
            "space would split",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, catalog.ApiService) else None,
)
def test_config_name_problem(service, config, problem):
    """A fixed name for placement and glance; no space for cinder's --pyargv; anything else
    for the services given a list of files through their environment."""
    assert api.config_name_problem(service, config) == problem


def test_cinder_gets_its_config_file_as_the_applications_arguments():
    assert api.uwsgi_pyargv(catalog.CINDER_API, "/etc/cinder/cinder.conf") == [
        "--config-file",
        "/etc/cinder/cinder.conf",
    ]


def test_cinders_relative_config_path_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert api.uwsgi_pyargv(catalog.CINDER_API, "conf/cinder.conf") == [
        "--config-file",
        f"{tmp_path}/conf/cinder.conf",
    ]


@pytest.mark.parametrize(
    "service",
    [
        catalog.KEYSTONE,
        catalog.NOVA_API,
        catalog.PLACEMENT_API,
        catalog.GLANCE_API,
        catalog.NEUTRON_SERVER,
    ],
    ids=lambda service: service.name,
)
def test_the_services_read_through_their_environment_get_no_arguments(service):
    assert api.uwsgi_pyargv(service, "/srv/site/site.conf") == []


def test_uwsgi_hands_the_application_its_arguments_in_one_pyargv():
    """uwsgi splits --pyargv's one value at spaces into the application's sys.argv[1:]."""
    ini = api.parse_uwsgi_ini(CINDER_API_INI, "/etc/cinder/cinder-api-uwsgi.ini", "192.0.2.7:8776")
    pyargv = ["--config-file", "/etc/cinder/cinder.conf"]
    assert api.uwsgi_argv("/usr/bin/uwsgi", ini, pyargv) == [
        "/usr/bin/uwsgi",
        "--ini",
        "/etc/cinder/cinder-api-uwsgi.ini",
        "--die-on-term",
        "--http-socket",
        "192.0.2.7:8776",
        "--pyargv",
        "--config-file /etc/cinder/cinder.conf",
    ]


def test_uwsgi_gets_no_pyargv_without_arguments():
    ini = api.parse_uwsgi_ini(PLACEMENT_API_INI, "/etc/placement/p.ini", "192.0.2.7:8778")
    assert "--pyargv" not in api.uwsgi_argv("/usr/bin/uwsgi", ini, [])


def test_uwsgi_gets_the_socket_debians_file_leaves_to_the_init_script():
    ini = api.parse_uwsgi_ini(KEYSTONE_INI, "/etc/keystone/keystone-uwsgi.ini", "192.0.2.7:5000")
    assert api.uwsgi_argv("/usr/bin/uwsgi", ini) == [
        "/usr/bin/uwsgi",
        "--ini",
        "/etc/keystone/keystone-uwsgi.ini",
        "--die-on-term",
        "--http-socket",
        "192.0.2.7:5000",
    ]


def test_uwsgi_gets_no_socket_when_the_file_has_one():
    ini = api.parse_uwsgi_ini(LAB_INI, "/etc/keystone/lab.ini", "192.0.2.7:5001")
    assert api.uwsgi_argv("/usr/bin/uwsgi", ini) == [
        "/usr/bin/uwsgi",
        "--ini",
        "/etc/keystone/lab.ini",
        "--die-on-term",
    ]


def test_uwsgi_gets_an_http_socket_beside_a_files_unix_socket():
    ini = api.parse_uwsgi_ini("[uwsgi]\nsocket = /run/nova/api.sock\n", "n.ini", "[::1]:8774")
    assert api.uwsgi_argv("/usr/bin/uwsgi", ini)[-2:] == ["--http-socket", "[::1]:8774"]


def test_keystones_own_server_takes_its_address_on_the_command_line():
    argv = api.executable_argv(
        catalog.KEYSTONE,
        "/usr/bin/keystone-wsgi-public",
        "/etc/keystone/keystone.conf",
        "192.0.2.7",
        5000,
        "/run/keystone/keystone-ocf.pid.listen.conf",
    )
    assert argv == ["/usr/bin/keystone-wsgi-public", "--host", "192.0.2.7", "--port", "5000"]


def test_nova_api_takes_its_address_from_a_second_config_file():
    argv = api.executable_argv(
        catalog.NOVA_API,
        "/usr/bin/nova-api",
        "/etc/nova/nova.conf",
        "192.0.2.7",
        8774,
        "/run/nova/nova-api-ocf.pid.listen.conf",
    )
    assert argv == [
        "/usr/bin/nova-api",
        "--config-file",
        "/etc/nova/nova.conf",
        "--config-file",
        "/run/nova/nova-api-ocf.pid.listen.conf",
    ]


def test_the_listen_file_of_nova_api_sets_address_port_and_the_compute_api_alone(tmp_path):
    # without enabled_apis, nova-api's own server also starts the metadata API on 0.0.0.0:8775
    text = api.listen_config_text(catalog.NOVA_API, "192.0.2.7", 8774)
    assert text == (
        "# written by ocf:stackha:nova-api\n"
        "[DEFAULT]\n"
        "osapi_compute_listen = 192.0.2.7\n"
        "osapi_compute_listen_port = 8774\n"
        "enabled_apis = osapi_compute\n"
    )
    api.check_service_config(write(tmp_path, text, "listen.conf"))


def test_keystone_needs_no_listen_file():
    assert api.listen_config_text(catalog.KEYSTONE, "192.0.2.7", 5000) == ""


# -- the service's own config file -------------------------------------------------------------

# An oslo.config file as keystone reads it: '%' is not interpolated, comments are whole lines.
KEYSTONE_CONF = """\
[DEFAULT]
debug = false
# the log goes to the file uwsgi's logto names

log_dir = /var/log/keystone
[database]
connection = mysql+pymysql://keystone:p%40ss@192.0.2.10/keystone
[token]
provider = fernet
"""


def test_an_oslo_config_file_parses(tmp_path):
    api.check_service_config(write(tmp_path, KEYSTONE_CONF, "keystone.conf"))


def test_repeated_sections_and_options_are_accepted_as_oslo_config_does(tmp_path):
    text = "[DEFAULT]\ndebug = false\n[database]\nmax_retries = 1\n[DEFAULT]\ndebug = true\n"
    api.check_service_config(write(tmp_path, text + "debug = false\n", "nova.conf"))


def test_the_first_line_that_is_not_an_option_is_named(tmp_path):
    path = write(
        tmp_path,
        "[DEFAULT]\ndebug = false\nthis line has no equals sign\n[api]\nnor this one\n",
        "nova.conf",
    )
    with pytest.raises(ConfigError) as caught:
        api.check_service_config(path)
    assert str(caught.value) == f"config {path} does not parse: line 3 is not 'name = value'"


def test_an_option_before_any_section_is_named(tmp_path):
    path = write(tmp_path, "# keystone\ndebug = false\n", "keystone.conf")
    with pytest.raises(ConfigError) as caught:
        api.check_service_config(path)
    assert str(caught.value) == f"config {path} does not parse: line 2 is outside any [section]"


def test_a_missing_or_unreadable_config_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        api.check_service_config(str(tmp_path / "none.conf"))
    assert str(caught.value) == f"config {tmp_path}/none.conf: No such file or directory"
    binary = tmp_path / "latin1.conf"
    binary.write_bytes(b"[DEFAULT]\nlog_dir = /var/log/k\xe9ystone\n")
    with pytest.raises(ConfigError) as caught:
        api.check_service_config(str(binary))
    assert str(caught.value) == f"config {binary} is not UTF-8 text"


# -- where a clone instance binds --------------------------------------------------------------


def test_an_address_literal_is_its_own_address():
    """getaddrinfo of a literal returns it: no name service is asked."""
    assert api.own_address("192.0.2.7") == "192.0.2.7"
    assert api.own_address("2001:db8::7") == "2001:db8::7"


def test_a_name_of_loopback_only_is_refused():
    """Debian's installer maps the host name to 127.0.1.1; nothing else could reach that."""
    with pytest.raises(ConfigError) as caught:
        api.own_address("127.0.1.1")
    assert str(caught.value) == (
        "host name 127.0.1.1 resolves to loopback only (127.0.1.1): "
        "set address to this node's address"
    )
    with pytest.raises(
        ConfigError,
        match=r"^host name localhost resolves to loopback only \((127\.0\.0\.1|::1)"
        r"(, (127\.0\.0\.1|::1))*\): set address to this node's address$",
    ):
        api.own_address("localhost")


def test_the_first_ipv4_address_that_is_not_loopback_wins(monkeypatch):
    found = [
        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::7", 0, 0, 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.1.1", 0)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0)),
    ]
    asked = []

    def getaddrinfo(host, *args, **kwargs):
        asked.append(host)
        return found

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert api.own_address("node1") == "192.0.2.7"
    assert asked == ["node1"]
    found.pop(2)
    assert api.own_address("node1") == "2001:db8::7"


def test_a_name_that_cannot_resolve_is_an_error_naming_it():
    """An empty label fails in the idna codec, before any name service is asked."""
    with pytest.raises(ConfigError, match=r"^host name node1\.\.example does not resolve: "):
        api.own_address("node1..example")


@pytest.fixture
def taken_port():
    """A loopback port another process (the test) listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_port_another_process_listens_on_is_in_use(taken_port):
    assert api.port_problem("127.0.0.1", taken_port) == (
        f"port {taken_port} on 127.0.0.1 is already in use by another process"
    )


@pytest.mark.parametrize("host", ["", "*", "0.0.0.0"])
def test_a_wildcard_bind_is_tried_as_uwsgi_binds_it(taken_port, host):
    assert api.port_problem(host, taken_port) == (
        f"port {taken_port} on 0.0.0.0 is already in use by another process"
    )


def test_an_address_this_node_does_not_have_is_named():
    assert api.port_problem("192.0.2.1", 5000) == "address 192.0.2.1 is not an address of this node"


def test_a_free_port_is_no_problem(closed_port):
    assert api.port_problem("127.0.0.1", closed_port) is None
    assert api.port_problem("", closed_port) is None


# -- the deep check ----------------------------------------------------------------------------

# nova 26 GET /v2.1/flavors with a token (nova/api/openstack/compute/versionsV21.py)
NOVA_V21 = json.dumps({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.93"}})


@pytest.fixture
def keystone_api():
    """Keystone where the credentials' auth_url points (the VIP), apart from the service."""
    server = FakeHttpServer()
    yield server
    server.close()


def headers_of(request):
    return {name.lower(): value for name, value in request[2].items()}


def test_with_auth_url_changes_the_url_alone():
    credentials = api.Credentials("http://vip:5000/v3", "monitor", PASSWORD, "service", "M", "O")
    assert api.with_auth_url(credentials, "http://192.0.2.7:5000/v3") == api.Credentials(
        "http://192.0.2.7:5000/v3", "monitor", PASSWORD, "service", "M", "O"
    )


class EachGetsOneSecond:
    """The monitor's budget as the deep check sees it (a stackha.clock.Waits): each request
    gets 1 s, and what was asked is recorded."""

    def __init__(self):
        self.asked = []

    def timed(self, what, wait):
        self.asked.append(what)
        return wait(1.0)


def test_keystones_deep_check_is_a_token_issued_by_this_node(fake_api, closed_port):
    """The credentials' auth_url (the VIP, here nothing) is not asked: this node is."""
    fake_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, "{}")
    credentials = api.Credentials(f"http://127.0.0.1:{closed_port}/v3", "monitor", PASSWORD, "s")
    api.check_authenticated(catalog.KEYSTONE, fake_api.url, credentials, EachGetsOneSecond())
    ((method, path, _, body),) = fake_api.requests
    assert (method, path) == ("POST", "/v3/auth/tokens")
    assert json.loads(body) == api.token_request_body(credentials)


def test_keystone_refusing_the_user_is_a_credentials_error(fake_api):
    fake_api.answers["POST", "/v3/auth/tokens"] = (401, {}, KEYSTONE_401)
    with pytest.raises(CredentialsError) as caught:
        api.check_authenticated(
            catalog.KEYSTONE, fake_api.url, credentials_for(fake_api), EachGetsOneSecond()
        )
    assert str(caught.value) == "keystone refused user monitor (domain Default, project service)"


def test_keystone_failing_its_own_deep_check_is_not_keystone_unavailable(fake_api):
    """For keystone itself, no token is keystone's failure: a restart may cure it."""
    fake_api.answers["POST", "/v3/auth/tokens"] = (503, {}, "")
    with pytest.raises(api.OpenStackApiError) as caught:
        api.check_authenticated(
            catalog.KEYSTONE, fake_api.url, credentials_for(fake_api), EachGetsOneSecond()
        )
    assert type(caught.value) is api.OpenStackApiError
    assert str(caught.value) == (
        f"POST {fake_api.url}/v3/auth/tokens answered 503 Service Unavailable"
    )


def test_nova_api_is_asked_with_a_token_from_the_credentials_keystone(fake_api, keystone_api):
    keystone_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, "{}")
    fake_api.answers["GET", "/v2.1/flavors"] = (200, {}, NOVA_V21)
    credentials = credentials_for(keystone_api)
    waits = EachGetsOneSecond()
    api.check_authenticated(catalog.NOVA_API, fake_api.url, credentials, waits)
    # two requests, each through the one budget the caller gave
    assert waits.asked == [f"POST {keystone_api.url}/v3/auth/tokens", "GET /v2.1/flavors"]
    assert [request[:2] for request in keystone_api.requests] == [("POST", "/v3/auth/tokens")]
    assert json.loads(keystone_api.requests[0][3]) == api.token_request_body(credentials)
    ((method, path, _, _),) = fake_api.requests
    assert (method, path) == ("GET", "/v2.1/flavors")
    assert headers_of(fake_api.requests[0])["x-auth-token"] == "gAAAAABn"


def test_nova_api_refusing_the_token_names_the_status(fake_api, keystone_api):
    keystone_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, "{}")
    fake_api.answers["GET", "/v2.1/flavors"] = (401, {}, KEYSTONE_401)
    with pytest.raises(api.OpenStackApiError) as caught:
        api.check_authenticated(
            catalog.NOVA_API, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert type(caught.value) is api.OpenStackApiError
    assert str(caught.value) == (
        "GET /v2.1/flavors with a token answered 401 Unauthorized: "
        "The request you have made requires authentication."
    )


# What keystonemiddleware's auth_token answers (webob renders its HTTPServiceUnavailable so for
# an Accept of application/json) when Keystone did not answer its token validation, or
# answered it with an error: Debian 12's 10.1 and Debian 13's 10.9 say the same.
MIDDLEWARE_503 = json.dumps(
    {
        "message": "The server is currently unavailable. Please try again at a later time.<br />"
        "<br />\nThe Keystone service is temporarily unavailable.\n\n",
        "code": "503 Service Unavailable",
        "title": "Service Unavailable",
    }
)


@pytest.mark.parametrize("service", catalog.SERVICES[1:], ids=lambda s: s.name)
def test_a_service_that_could_not_validate_the_token_with_keystone_is_keystone_unavailable(
    fake_api, keystone_api, service
):
    """Keystone issued the token, then was gone (or failed) when the service's middleware asked
    it to validate it: Keystone's fault, not the service's."""
    project_token(keystone_api)
    path = service.authenticated_path.replace("{project_id}", SERVICE_PROJECT_ID)
    fake_api.answers["GET", path] = (503, {}, MIDDLEWARE_503)
    with pytest.raises(api.KeystoneUnavailable) as caught:
        api.check_authenticated(
            service, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert str(caught.value) == (
        f"{service.name} could not validate the token: GET {service.authenticated_path} with a "
        "token answered 503 Service Unavailable: The server is currently unavailable. Please "
        "try again at a later time. The Keystone service is temporarily unavailable."
    )


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        # a 503 of the service's own: cinder's volume-backup API when no backup service runs
        (
            503,
            '{"serviceUnavailable": {"code": 503, "message": "Service cinder-backup could not '
            'be found."}}',
            "503 Service Unavailable: Service cinder-backup could not be found.",
        ),
        # an error of the service's, in nova's and neutron's shape, and a page that is no JSON
        (
            500,
            '{"computeFault": {"code": 500, "message": "Unexpected API Error."}}',
            "500 Internal Server Error: Unexpected API Error.",
        ),
        (503, "<html>Keystone</html>", "503 Service Unavailable"),
    ],
)
def test_an_error_of_the_services_own_is_named_with_its_message(
    fake_api, keystone_api, status, body, message
):
    project_token(keystone_api)
    fake_api.answers["GET", "/v2.1/flavors"] = (status, {}, body)
    with pytest.raises(api.OpenStackApiError) as caught:
        api.check_authenticated(
            catalog.NOVA_API, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert type(caught.value) is api.OpenStackApiError
    assert str(caught.value) == f"GET /v2.1/flavors with a token answered {message}"


def test_nova_api_not_answering_is_not_reachable(keystone_api, closed_port):
    keystone_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, "{}")
    url = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(NotReachable, match=f"^GET {url}/v2.1/flavors: Connection refused$"):
        api.check_authenticated(
            catalog.NOVA_API, url, credentials_for(keystone_api), EachGetsOneSecond()
        )


def test_keystone_failing_is_keystone_unavailable_and_nova_is_not_asked(fake_api, keystone_api):
    keystone_api.answers["POST", "/v3/auth/tokens"] = (503, {}, "")
    with pytest.raises(api.KeystoneUnavailable) as caught:
        api.check_authenticated(
            catalog.NOVA_API, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert str(caught.value) == (
        f"no token from keystone: POST {keystone_api.url}/v3/auth/tokens answered "
        "503 Service Unavailable"
    )
    assert fake_api.requests == []


def test_keystone_not_answering_is_keystone_unavailable(fake_api, closed_port):
    credentials = api.Credentials(f"http://127.0.0.1:{closed_port}/v3", "monitor", PASSWORD, "s")
    with pytest.raises(api.KeystoneUnavailable) as caught:
        api.check_authenticated(catalog.NOVA_API, fake_api.url, credentials, EachGetsOneSecond())
    assert str(caught.value) == (
        f"no token from keystone: POST http://127.0.0.1:{closed_port}/v3/auth/tokens: "
        "Connection refused"
    )
    assert fake_api.requests == []


def test_keystone_refusing_the_user_of_nova_is_a_credentials_error(fake_api, keystone_api):
    """Not KeystoneUnavailable: the credentials file is wrong, not keystone down."""
    keystone_api.answers["POST", "/v3/auth/tokens"] = (401, {}, KEYSTONE_401)
    with pytest.raises(CredentialsError):
        api.check_authenticated(
            catalog.NOVA_API, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert fake_api.requests == []


def project_token(keystone_api, body=PROJECT_TOKEN):
    keystone_api.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAAABn"}, body)


def test_placement_is_asked_for_the_usages_of_the_tokens_project_at_microversion_1_9(
    fake_api, keystone_api
):
    project_token(keystone_api)
    path = f"/usages?project_id={SERVICE_PROJECT_ID}"
    fake_api.answers["GET", path] = (200, {}, '{"usages": {}}')
    waits = EachGetsOneSecond()
    api.check_authenticated(
        catalog.PLACEMENT_API, fake_api.url, credentials_for(keystone_api), waits
    )
    # the path as the record writes it in what is logged: the project's id says nothing
    assert waits.asked == [
        f"POST {keystone_api.url}/v3/auth/tokens",
        "GET /usages?project_id={project_id}",
    ]
    ((method, sent, _, _),) = fake_api.requests
    assert (method, sent) == ("GET", path)
    headers = headers_of(fake_api.requests[0])
    assert headers["openstack-api-version"] == "placement 1.9"
    assert headers["x-auth-token"] == "gAAAAABn"


@pytest.mark.parametrize(
    ("service", "path"),
    [
        (catalog.CINDER_API, f"/v3/{SERVICE_PROJECT_ID}/volumes?limit=1"),
        (catalog.GLANCE_API, "/v2/images?limit=1"),
        (catalog.NEUTRON_SERVER, "/v2.0/networks?limit=1"),
    ],
    ids=lambda value: value.name if isinstance(value, catalog.ApiService) else None,
)
def test_cinder_glance_and_neutron_are_asked_a_list_of_one_with_the_token(
    fake_api, keystone_api, service, path
):
    project_token(keystone_api)
    fake_api.answers["GET", path] = (200, {}, "{}")
    api.check_authenticated(
        service, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
    )
    ((method, sent, _, _),) = fake_api.requests
    assert (method, sent) == ("GET", path)
    headers = headers_of(fake_api.requests[0])
    assert headers["x-auth-token"] == "gAAAAABn"
    assert "openstack-api-version" not in headers


@pytest.mark.parametrize(
    "service", [catalog.PLACEMENT_API, catalog.CINDER_API], ids=lambda s: s.name
)
def test_a_token_without_a_project_is_keystone_unavailable_where_the_path_names_it(
    fake_api, keystone_api, service
):
    project_token(keystone_api, body='{"token": {"domain": {"id": "default"}}}')
    with pytest.raises(api.KeystoneUnavailable, match="^keystone's token names no project id$"):
        api.check_authenticated(
            service, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert fake_api.requests == []


def test_placement_refusing_the_token_names_the_path_as_written(fake_api, keystone_api):
    project_token(keystone_api)
    fake_api.answers["GET", f"/usages?project_id={SERVICE_PROJECT_ID}"] = (403, {}, "{}")
    with pytest.raises(api.OpenStackApiError) as caught:
        api.check_authenticated(
            catalog.PLACEMENT_API, fake_api.url, credentials_for(keystone_api), EachGetsOneSecond()
        )
    assert type(caught.value) is api.OpenStackApiError
    assert str(caught.value) == (
        "GET /usages?project_id={project_id} with a token answered 403 Forbidden"
    )


@pytest.mark.parametrize("service", catalog.SERVICES, ids=lambda s: s.name)
@pytest.mark.parametrize("status", [400, 401, 500])
def test_no_deep_check_message_shows_the_password(fake_api, service, status):
    """Keystone with insecure_debug quotes what it was sent."""
    echo = {"error": {"code": status, "message": f"bad password {PASSWORD}, {PASSWORD!r}"}}
    fake_api.answers["POST", "/v3/auth/tokens"] = (status, {}, json.dumps(echo))
    with pytest.raises(api.OpenStackApiError) as caught:
        api.check_authenticated(
            service, fake_api.url, credentials_for(fake_api), EachGetsOneSecond()
        )
    assert not any(part in str(caught.value) for part in ("pa55", "secret", PASSWORD))
