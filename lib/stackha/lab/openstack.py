"""keystone and nova-api on the lab's nodes, behind HAProxy and a virtual IP: what an operator's
provisioning does once the Galera clone runs (see ``tests/galera_checks.deploy``) and before
Pacemaker takes the API services over. No API service is left running here.

What :func:`provision` does, and why each step is where it is:

- the databases ``keystone nova_api nova nova_cell0`` and their users, on node1's Galera, with
  SQL on the mariadb client's stdin (Galera replicates users and grants);
- on every node: the distribution's ``/etc/keystone`` and ``/etc/nova`` copied in (private per
  node, see ``stackha.lab.node.SERVICE_DIRS``), a ``keystone.conf`` and ``nova.conf`` of its
  own, Debian's uwsgi ini files trimmed for two cores (:func:`trimmed_uwsgi_ini`), each random
  password in a file of its own (root, 0600) and the monitor's credentials files;
- once, on node1, as the service's user: ``keystone-manage db_sync``, ``fernet_setup``,
  ``credential_setup``, ``bootstrap`` (the admin password through ``OS_BOOTSTRAP_PASSWORD``,
  the endpoints on the virtual IP), and ``nova-manage api_db sync``, ``cell_v2 map_cell0``,
  ``cell_v2 create_cell --name=cell1``, ``db sync``; the keystone and nova steps run side by
  side (different databases, each chain CPU-bound on one core);
- node1's Fernet and credential key repositories copied to the other nodes: a token issued
  by one node behind the virtual IP must be valid on every other;
- the ``service`` project, the ``nova`` user (admin on ``service``: keystonemiddleware validates
  tokens with it), a ``stackha-monitor`` user (reader on ``service``: what the agents' deep
  monitor logs in as) and the compute service with its endpoints, through Keystone's REST API
  on a keystone started for the purpose on node1 as the agent would start it, then stopped;
- ``net.ipv4.ip_nonlocal_bind=1`` in every node's network namespace (its ``sysctl.conf``, so it
  survives a power cycle): HAProxy binds the virtual IP on every node, the IP itself is on one;
- the HAProxy configuration, one file for every node, in the lab's directory.

Where the databases are reached, given ``database_vip`` (what ``stackha lab deploy`` does, the
database path OpenStack prescribes): through HAProxy on that VIP, port 3306, which sends every
connection to one Galera node at a time, the others ``backup``, with a health check
(``stackha-galera-check``) that asks each node whether it is Synced in the Primary Component —
the node's Galera binds its own address and 127.0.0.1, so HAProxy can bind the VIP's port 3306
on every node. The check's user (``stackha-check``, no privilege, from the lab's subnet only) is
made with the other users, its credentials in ``/etc/mysql/stackha-galera-check.cnf`` on every
node (root, 0600: the lab's HAProxy runs as root); provisioning waits until the check passes
through the VIP before it runs ``db_sync``. The cell mappings nova stores *in* the database
then name the VIP, the same for every node.

Without ``database_vip`` (the pcs-built deployment of ``tests/openstack_checks.deploy``, and
``database_path = local``) the databases are reached at ``127.0.0.1``: every node's services use
their own node's Galera (every node a writer), and the cell mappings then mean "this node's
Galera" wherever they are read; with a node address in them, every node's nova-api would use
that one node's database for cell0 and cell1.

RabbitMQ is left out: nova-api answers ``GET /`` and authenticated reads
(``GET /v2.1/servers``, ``/v2.1/flavors``, ``/v2.1/``) from the database alone and never
connects to the broker (checked in the lab with no broker anywhere: no connection to port 5672,
nothing about AMQP in its log; ``GET /`` in 3-5 ms, an authenticated read in 30 ms, 1-2.5 s
when a worker first validates a token through the virtual IP). ``nova.conf``
still names one, because ``nova-manage cell_v2 create_cell`` refuses to run without a
``transport_url`` and cell1's mapping records it: the three nodes' brokers with the RabbitMQ
lab's ``openstack`` user (pass ``rabbitmq_password``, from ``stackha.lab.rabbitmq.provision``,
when the lab also runs RabbitMQ). keystone's cache (oslo.cache's ``[cache]``) is every node's
memcached, port 11211 on each node's address: the ``ocf:stackha:memcached`` clone, which the
deployment runs before keystone (``stackha lab deploy``'s site; the pcs-built one creates it
too); the other services' keystonemiddleware caches validated tokens in each worker.

How the lab test runs it all with Pacemaker (``pcs`` inside node1; the ``ocf:stackha:keystone``
and ``ocf:stackha:nova-api`` agents take their defaults: uwsgi mode, Debian's ini paths, the
node's own address through its host name, ports 5000 and 8774)::

    pcs resource create galera ocf:stackha:galera wsrep_cluster_address=gcomm://node1,node2,node3 \\
        promotable promoted-max=3 notify=true                     # tests/galera_checks.deploy
    info = stackha.lab.openstack.provision(lab)
    pcs resource create haproxy ocf:stackha:haproxy config=<lab dir>/haproxy.cfg \\
        op monitor interval=10s timeout=20s monitor interval=30s timeout=20s OCF_CHECK_LEVEL=10 \\
        clone interleave=true
    pcs resource create vip ocf:heartbeat:IPaddr2 ip=192.168.213.100 cidr_netmask=24 nic=eth0 \\
        op monitor interval=10s timeout=20s
    pcs constraint colocation add vip with haproxy-clone INFINITY
    pcs constraint order start haproxy-clone then start vip
    pcs resource create keystone ocf:stackha:keystone \\
        credentials=/etc/keystone/stackha-monitor.credentials \\
        op start timeout=120s stop timeout=60s \\
        monitor interval=10s timeout=30s monitor interval=30s timeout=30s OCF_CHECK_LEVEL=10 \\
        clone interleave=true
    pcs constraint order promote galera-clone then start keystone-clone
    pcs resource create nova-api ocf:stackha:nova-api \\
        credentials=/etc/nova/stackha-monitor.credentials \\
        op start timeout=120s stop timeout=60s \\
        monitor interval=10s timeout=30s monitor interval=30s timeout=30s OCF_CHECK_LEVEL=10 \\
        clone interleave=true
    pcs constraint order promote galera-clone then start nova-api-clone
    pcs constraint order start keystone-clone then start nova-api-clone kind=Optional

(``tests/openstack_checks.py`` runs these as argument lists; ``stackha lab deploy`` applies a CIB
rendered from ``crm-templates/`` instead.) With ``interleave=true`` each API instance waits for
the Galera instance *on its own node* to be promoted, which is the one it uses. nova-api needs
Keystone only to validate a client's token, through the virtual IP, so it is ordered after
Keystone at start-up only
(``kind=Optional``): a keystone restart on a node must not restart that node's nova-api.
Neither API waits for HAProxy or the virtual IP: they listen on the node's own address, and
HAProxy's health checks (every 2 s, 2 failures out, 2 successes in) follow them.

Seen in the lab with these constraints: a haproxy killed on the node that holds the virtual IP
is recovered and the IP restarted in place (about 0.5 s without it); one killed elsewhere is
recovered without touching the IP; the node holding the IP crashed (no fencing), keystone and
nova answered through the IP on another node 9 s later.

:func:`start_api` and :func:`stop_api` run a service by hand as its agent does, for checks
before (or without) the API clones; they use the agent's pid file, so :func:`stop_api` would
stop a Pacemaker-run instance too: not while the clones exist.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from stackha import galera_check, http_client
from stackha.lab.lab import HAPROXY_CONFIG, Lab
from stackha.lab.namespaces import LabError
from stackha.runner import CommandError, Spawn
from stackha.services import api_catalog as catalog
from stackha.services import haproxy, memcached
from stackha.services import openstack_api as api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Optional

    from stackha.lab.namespaces import NamespaceRunner
    from stackha.services.api_catalog import ApiService, CatalogEntry

NODES = ("node1", "node2", "node3")
IDENTITY = catalog.IDENTITY
# The virtual IP: the address of the lab's subnet that no one has (.1 the switch, .11… the
# nodes, .99 the PDU, .101… the BMCs; see stackha.lab.lab.plan).
VIP_INDEX = 100
# The database VIP (serves = database): HAProxy on it sends the API services' database
# connections to one Galera node at a time.
DATABASE_VIP_INDEX = 98
NIC = "eth0"  # every node's interface on the lab switch
REGION = "RegionOne"

MARIADB = "/usr/bin/mariadb"
UWSGI = "/usr/bin/uwsgi"
SETPRIV = "/usr/bin/setpriv"
KILL = "/bin/kill"

# Secrets every service shares, one file each (root, 0600) on every node; provisioning again
# reuses them. Each service's own: its database password and its Keystone user's, in its
# configuration directory (secret_files).
ADMIN_PASSWORD = f"{IDENTITY.config_dir}/admin.password"
MONITOR_PASSWORD = f"{IDENTITY.config_dir}/stackha-monitor.password"
RABBITMQ_PASSWORD = f"{IDENTITY.config_dir}/rabbitmq.password"
CHECK_PASSWORD = "/etc/mysql/stackha-check.password"
COMMON_SECRETS = {
    "admin": ADMIN_PASSWORD,
    "monitor": MONITOR_PASSWORD,
    "rabbitmq": RABBITMQ_PASSWORD,
    "check": CHECK_PASSWORD,
}
# a key=value file that stackha.services.openstack_api.read_openstack_credentials reads
ADMIN_CREDENTIALS = f"{IDENTITY.config_dir}/admin.credentials"
ADMIN_USER = "admin"
ADMIN_PROJECT = "admin"
SERVICE_PROJECT = "service"
MONITOR_USER = "stackha-monitor"
RABBITMQ_USER = "openstack"  # stackha.lab.rabbitmq.OPENSTACK_USER
AMQP_PORT = 5672
HAPROXY_STATS_SOCKET = "/run/haproxy/admin.sock"
SYSCTLS = {"net.ipv4.ip_nonlocal_bind": "1"}
# HAProxy's health check of the Galera nodes logs in as this user (no privilege).
CHECK_USER = "stackha-check"
LOCAL_DATABASE = "127.0.0.1"


def database_secret(service: ApiService) -> str:
    return f"{service.name}_db"


def keystone_secret(service: ApiService) -> str:
    return f"{service.name}_keystone"


def secret_files(services: Sequence[ApiService] = catalog.SERVICES) -> dict[str, str]:
    """Every secret of a lab running ``services``: key -> path inside a node."""
    files = dict(COMMON_SECRETS)
    for service in services:
        if service.lab.databases:
            files[database_secret(service)] = f"{service.config_dir}/database.password"
        if service.lab.authtoken:
            files[keystone_secret(service)] = f"{service.config_dir}/keystone.password"
    return files


# -- what goes into the files ---------------------------------------------------------------


def vip_of(subnet: str) -> str:
    """The virtual IP of a lab on ``subnet``."""
    return str(ipaddress.ip_network(subnet)[VIP_INDEX])


def database_vip_of(subnet: str) -> str:
    """The database VIP of a lab on ``subnet``."""
    return str(ipaddress.ip_network(subnet)[DATABASE_VIP_INDEX])


def galera_check_command(stackha: str = "") -> str:
    """The ``stackha-galera-check`` beside the ``stackha`` command given, else the package's
    (which the lab installs on the host, or in the layer of nodes of a release)."""
    from stackha.lab.package import GALERA_CHECK

    return str(Path(stackha).parent / "stackha-galera-check") if stackha else GALERA_CHECK


def database_url(user: str, password: str, database: str, host: str = LOCAL_DATABASE) -> str:
    return f"mysql+pymysql://{user}:{password}@{host}/{database}"


def check_user_sql(password: str, subnet: str) -> list[str]:
    """The health check's user: from the lab's subnet only (HAProxy checks every node from
    every node's own address), no privilege (SHOW GLOBAL STATUS needs none), a few connections
    at most (every HAProxy checks every node every 2 s)."""
    network = ipaddress.ip_network(subnet)
    account = f"'{CHECK_USER}'@'{network.network_address}/{network.netmask}'"
    return [
        f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}';",
        f"ALTER USER {account} IDENTIFIED BY '{password}' WITH MAX_USER_CONNECTIONS 30;",
    ]


def check_credentials_text(password: str) -> str:
    """The client option file HAProxy's health check reads (stackha.galera_check)."""
    return f"[client]\nuser = {CHECK_USER}\npassword = {password}\n"


def database_sql(
    passwords: Mapping[str, str],
    check_password: str = "",
    subnet: str = "",
    services: Sequence[ApiService] = catalog.SERVICES,
) -> str:
    """The databases of ``services`` and their users (each service's user, with its password
    in ``passwords`` under :func:`database_secret`), and the health check's (given
    ``check_password`` and the lab's ``subnet``), for the mariadb client's stdin (never its
    command line). Idempotent: the passwords are set again if the users exist."""
    lines = []
    for service in services:
        databases = service.lab.databases
        if not databases:
            continue
        user, password = service.user, passwords[database_secret(service)]
        lines += [f"CREATE DATABASE IF NOT EXISTS {db};" for db in databases]
        # Passwords are hex (secrets.token_hex): nothing in them needs quoting.
        lines.append(f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';")
        lines.append(f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}';")
        lines += [f"GRANT ALL PRIVILEGES ON {db}.* TO '{user}'@'%';" for db in databases]
    if check_password:
        lines += check_user_sql(check_password, subnet)
    return "\n".join(lines) + "\n"


def transport_url(node_names: Sequence[str], password: str) -> str:
    hosts = ",".join(f"{RABBITMQ_USER}:{password}@{name}:{AMQP_PORT}" for name in node_names)
    return f"rabbit://{hosts}/"


def memcache_servers(addresses: Sequence[str]) -> str:
    """oslo.cache's ``memcache_servers``: the memcached clone's instance on each of the nodes'
    ``addresses``, on the agent's default port (each binds its node's own address)."""
    return memcached.server_list(addresses, memcached.PORT)


def keystone_authtoken(keystone_url: str, user: str, password: str) -> str:
    """The ``[keystone_authtoken]`` section: keystonemiddleware validates clients' tokens at
    the Keystone of ``keystone_url`` (its base URL) as ``user`` of the ``service`` project,
    whose password is ``password``."""
    return f"""[keystone_authtoken]
www_authenticate_uri = {keystone_url}/
auth_url = {keystone_url}/
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = {SERVICE_PROJECT}
username = {user}
password = {password}
"""


def service_config(
    service: ApiService,
    node: str,
    address: str,
    vip: str,
    passwords: Mapping[str, str],
    database_host: str = LOCAL_DATABASE,
    memcache_servers: str = "",
) -> str:
    """``service``'s configuration file on ``node`` (whose address is ``address``): its
    record's sections with the placeholders filled in (see stackha.services.api_catalog), and
    ``[keystone_authtoken]`` if it validates tokens. ``passwords`` holds the lab's secrets
    (:func:`secret_files`' keys); its databases are reached at ``database_host``, its cache
    at ``memcache_servers`` (every node's memcached, :func:`memcache_servers`)."""
    values = {
        "node": node,
        "address": address,
        "vip": vip,
        "transport_url": passwords.get("transport_url", ""),
        "memcache_servers": memcache_servers,
    }
    for database in service.lab.databases:
        password = passwords[database_secret(service)]
        values[f"db_{database}"] = database_url(service.user, password, database, database_host)
    lines = [f"# written by stackha.lab.openstack for {node}"]
    for section, options in service.lab.config:
        lines.append(f"[{section}]")
        lines += [f"{key} = {value.format_map(values)}" for key, value in options]
        lines.append("")
    text = "\n".join(lines) + "\n"
    if service.lab.authtoken:
        keystone = api.endpoint_url(vip, IDENTITY.port)
        text += keystone_authtoken(keystone, service.user, passwords[keystone_secret(service)])
    return text


def trimmed_uwsgi_ini(
    text: str, processes: int, threads: int, settings: Optional[Mapping[str, str]] = None
) -> str:
    """Debian's uwsgi ini with ``processes`` and ``threads`` set, the AppArmor plugin gone (the
    kernel here has no AppArmor; the plugin still loads and the profile option is useless) and
    each option of ``settings`` given that value (the test sandbox's ``logto``, ``chdir``).
    Everything else stays, ``rem-header = Content-Length`` above all (without it,
    keystoneauth's keep-alive requests get connection resets). Raises :class:`LabError` if the
    file binds a socket or writes a pid file of its own: the agent gives ``--http-socket`` on
    uwsgi's command line and keeps its own pid file.
    """
    replaced = {**(settings or {}), "processes": str(processes), "threads": str(threads)}
    out = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]")
        key, _, value = line.partition("=")
        key = key.strip()
        if section != "uwsgi" or not line or line[0] in "#;[":
            out.append(raw)
        elif key in ("http-socket", "https-socket", "socket", "http", "https"):
            raise LabError(f"the uwsgi ini binds {key} = {value.strip()} itself")
        elif key in ("pidfile", "pidfile2"):
            raise LabError(f"the uwsgi ini sets {key} = {value.strip()}: the agent keeps its own")
        elif key in replaced:
            out.append(f"{key} = {replaced[key]}")
        elif key in ("plugins", "plugin"):
            kept = [p.strip() for p in value.split(",") if p.strip() not in ("", "apparmor")]
            out.append(f"{key} = {','.join(kept)}")
        elif key == "apparmor-profile":
            continue
        else:
            out.append(raw)
    return "\n".join(out) + "\n"


def credentials_text(auth_url: str, username: str, password: str, project: str) -> str:
    """A credentials file as ``read_openstack_credentials`` reads it."""
    return (
        f"auth_url={auth_url}\nusername={username}\npassword={password}\n"
        f"project_name={project}\nuser_domain_name=Default\nproject_domain_name=Default\n"
    )


def haproxy_config(
    vip: str,
    backends: Sequence[tuple[str, str]],
    services: Sequence[ApiService] = catalog.SERVICES,
    database_vip: Optional[str] = None,
    check_command: str = "",
) -> str:
    """One HAProxy configuration for every node: each of ``services`` on ``vip`` and its own
    port, balanced over ``backends`` ((name, address) of every node) with health checks on
    its version document; given ``database_vip``, also the database path there
    (stackha.services.haproxy.galera_listen, checked by ``check_command``). HAProxy binds the
    virtual IPs on every node (the nodes need ``net.ipv4.ip_nonlocal_bind=1``); the stats
    socket is what the haproxy agent's depth-10 monitor asks."""

    def listen(service: ApiService) -> str:
        servers = "".join(
            f"    server {name} {address}:{service.port} check inter 2s fall 2 rise 2\n"
            for name, address in backends
        )
        return (
            f"listen {service.name.replace('-', '_')}\n"
            f"    bind {vip}:{service.port}\n"
            f"    option httpchk GET {service.version_path}\n"
            f"{servers}"
        )

    database = ""
    external_check = ""
    if database_vip:
        command = check_command or galera_check_command()
        database = "\n" + haproxy.galera_listen(database_vip, backends, command)
        external_check = "".join(f"    {line}\n" for line in haproxy.DATABASE_GLOBAL)
    listens = "\n".join(listen(service) for service in services)
    return f"""# written by stackha.lab.openstack
global
    stats socket {HAPROXY_STATS_SOCKET} mode 600 level admin
    maxconn 1000
{external_check}
defaults
    mode http
    option httplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout check 2s

{listens}{database}"""


# -- running things inside the nodes ---------------------------------------------------------


def _masked(text: str, hidden: Sequence[str]) -> str:
    for secret in hidden:
        if secret:
            text = text.replace(secret, "***")
    return text


def _run(
    runner: NamespaceRunner,
    argv: Sequence[str],
    what: str,
    timeout: float = 300,
    stdin: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    hidden: Sequence[str] = (),
    accept: Sequence[int] = (0,),
) -> str:
    try:
        result = runner.run(argv, timeout=timeout, stdin=stdin, env=env)
    except CommandError as err:
        raise LabError(f"{what}: {_masked(str(err), hidden)}") from None
    if result.returncode not in accept:
        reason = _masked(result.output_line(), hidden)
        raise LabError(f"{what} failed (exit {result.returncode}): {reason}")
    return result.stdout


def as_user(user: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``user`` with its groups: setpriv execs it (no PAM, no extra process),
    and keeps the environment, so a password can travel in it."""
    return [SETPRIV, f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def uwsgi_argv(service: str, address: str, ini_text: str) -> list[str]:
    """The command an API agent (``ocf:stackha:<service>``) runs in uwsgi mode for a node whose
    uwsgi ini (at Debian's path) is ``ini_text``: the node's address as ``--http-socket``,
    ``--die-on-term``, as the service's user, in a session of its own, with ``--pidfile``
    added: the agent writes the pid file itself, a command started from outside the node
    cannot, and the agent then finds the service where it keeps it."""
    api_service = catalog.service_named(service)
    ini = api.parse_uwsgi_ini(
        ini_text, api_service.uwsgi_ini, api.socket_address(address, api_service.port)
    )
    pyargv = api.uwsgi_pyargv(api_service, api_service.config)
    argv = [*api.uwsgi_argv(UWSGI, ini, pyargv), "--pidfile", api_service.pidfile]
    return ["/usr/bin/setsid", *as_user(api_service.user, argv)]


def _wait(predicate: Callable[[], bool], seconds: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            raise LabError(f"{what}: not within {seconds:.0f}s")
        time.sleep(interval)


def get(
    lab: Lab,
    url: str,
    token: str = "",
    timeout: float = 5.0,
    headers: Optional[Mapping[str, str]] = None,
) -> http_client.HttpAnswer:
    """``GET url`` from the lab's network (the switch's), with a token if given and
    ``headers`` besides."""
    headers = {"Accept": "application/json", **(headers or {})}
    if token:
        headers["X-Auth-Token"] = token
    return lab.switch().call(lambda: http_client.get(url, timeout, headers))


def answers_version(lab: Lab, base_url: str, service: str) -> bool:
    """Whether ``service`` at ``base_url`` answers its version document (200 and the right id)."""
    api_service = catalog.service_named(service)
    try:
        answer = get(lab, base_url + api_service.version_path, timeout=3.0)
    except http_client.HttpError:
        return False
    return api.version_document_ok(answer.status, answer.body, api_service) is None


def token_for(lab: Lab, credentials: api.Credentials, timeout: float = 10.0) -> str:
    """A token issued by the Keystone the credentials name, asked from the lab's network."""
    return lab.switch().call(lambda: api.issue_token(credentials, timeout))


def start_api(lab: Lab, node: str, service: str, timeout: float = 120.0) -> float:
    """Start ``service`` on ``node`` as its agent would (:func:`uwsgi_argv`) and wait until its
    version document answers on the node's address; returns the seconds that took."""
    started = time.monotonic()
    handle = lab.node(node)
    api_service = catalog.service_named(service)
    # the agent's log_file default; uwsgi's logto takes over once it has read its ini
    log = handle.root / api_service.log_file.lstrip("/")
    ini = handle.root / api_service.uwsgi_ini.lstrip("/")
    handle.runner.spawn(
        Spawn(
            tuple(uwsgi_argv(service, handle.address, ini.read_text())),
            output_path=str(log),
            # No OS_*_CONFIG_FILES: the services read Debian's default paths, the files
            # provisioned here. (nova's must name api-paste.ini first:
            # nova/api/openstack/wsgi_app.py loads the paste pipeline from the first file,
            # "nova.conf" alone gives a 500 to every request.)
        )
    )
    url = api.endpoint_url(handle.address, api_service.port)
    _wait(lambda: answers_version(lab, url, service), timeout, f"{node}: {service} answering")
    return time.monotonic() - started


def api_pid(lab: Lab, node: str, service: str) -> Optional[int]:
    """The uwsgi master of ``service`` on ``node`` (its pid inside the node), or None."""
    try:
        return lab.service_pid(node, (catalog.service_named(service).pidfile,), "uwsgi")
    except LabError:
        return None


def stop_api(lab: Lab, node: str, service: str, timeout: float = 60.0) -> None:
    """SIGTERM to the uwsgi master :func:`start_api` started (by its pid, inside the node) and
    wait until it is gone; SIGKILL if it is not gone in ``timeout`` seconds."""
    pid = api_pid(lab, node, service)
    if pid is None:
        return
    runner = lab.node_runner(node)
    runner.run([KILL, "-TERM", str(pid)], timeout=10)

    def gone() -> bool:
        return not runner.run([KILL, "-0", str(pid)], timeout=10).ok

    try:
        _wait(gone, timeout, f"{node}: {service} (pid {pid}) stopping")
    except LabError:
        runner.run([KILL, "-KILL", str(pid)], timeout=10)
        _wait(gone, 10, f"{node}: {service} (pid {pid}) killed")
    runner.run(["/bin/rm", "-f", catalog.service_named(service).pidfile], timeout=10)


# -- Keystone's REST API ---------------------------------------------------------------------


def _called_directly(request: Callable[[], http_client.HttpAnswer]) -> http_client.HttpAnswer:
    return request()


# A request dropped without an answer is sent again this many times, after a pause (s).
RETRIES = 2
RETRY_PAUSE_S = 0.5


class KeystoneAdmin:
    """The few Keystone objects provisioning needs, found or created through the REST API with
    an admin's token: what the install guides do with the ``openstack`` command (2.5-3 s per
    call) in a few requests. ``url`` is Keystone's base URL (without ``/v3``); ``call`` runs
    each request (the lab passes ``lab.switch().call``: the request then comes from the lab's
    network); by default it runs here. Raises :class:`LabError` when Keystone refuses.
    """

    def __init__(
        self,
        url: str,
        token: str,
        call: Optional[
            Callable[[Callable[[], http_client.HttpAnswer]], http_client.HttpAnswer]
        ] = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/") + "/v3"
        self.headers = {"X-Auth-Token": token, "Accept": "application/json"}
        self.call = call or _called_directly
        self.timeout = timeout

    def _send(
        self,
        request: Callable[[], http_client.HttpAnswer],
        what: str,
        accept: Sequence[int] = (),
        repeatable: bool = True,
    ) -> http_client.HttpAnswer:
        """``request``'s answer; a request that may be repeated (all but a POST) is sent again,
        up to RETRIES times, when the connection is closed without an answer: a uwsgi worker
        of a Keystone on SQLite was seen to drop one (once in some thousand requests)."""
        for attempt in range(RETRIES + 1):
            try:
                answer = self.call(request)
                break
            except http_client.NotReachable:
                if not repeatable or attempt == RETRIES:
                    raise
                time.sleep(RETRY_PAUSE_S)
        if answer.status >= 300 and answer.status not in accept:
            try:
                error = json.loads(answer.body).get("error") or {}
                message = str(error.get("message", ""))
            except (ValueError, AttributeError):  # uwsgi's own page when the app is broken
                message = " ".join(answer.body.split())[:200]
            raise LabError(
                f"keystone: {what} answered {http_client.status_text(answer.status)}: {message}"
            )
        return answer

    def find(self, collection: str, query: str) -> Optional[str]:
        """The id of the first of ``collection`` that ``query`` selects, or None."""
        url = f"{self.url}/{collection}?{query}"
        answer = self._send(
            lambda: http_client.get(url, self.timeout, self.headers), f"GET {collection}"
        )
        found = json.loads(answer.body).get(collection) or []
        return str(found[0]["id"]) if found else None

    def ensure(self, collection: str, query: str, body: Mapping[str, object]) -> str:
        """The id of the one ``query`` selects, created with ``body`` if there is none."""
        existing = self.find(collection, query)
        if existing:
            return existing
        url = f"{self.url}/{collection}"
        try:
            answer = self._send(
                lambda: http_client.send_json("POST", url, body, self.timeout, self.headers),
                f"POST {collection}",
                accept=(409,),
                repeatable=False,
            )
        except http_client.NotReachable:
            # Whether Keystone made it before the connection dropped, a lookup tells; then
            # the one more try cannot make a second.
            existing = self.find(collection, query)
            if existing:
                return existing
            answer = self._send(
                lambda: http_client.send_json("POST", url, body, self.timeout, self.headers),
                f"POST {collection}",
                accept=(409,),
                repeatable=False,
            )
        if answer.status == 409:  # made meanwhile by someone else
            existing = self.find(collection, query)
            if existing:
                return existing
            raise LabError(f"keystone: POST {collection} answered 409 Conflict: none found")
        (created,) = json.loads(answer.body).values()
        return str(created["id"])

    def grant(self, project: str, user: str, role: str) -> None:
        """Role ``role`` on ``project`` to ``user`` (ids)."""
        url = f"{self.url}/projects/{project}/users/{user}/roles/{role}"
        self._send(lambda: http_client.put(url, self.timeout, self.headers), "PUT role assignment")

    def set_password(self, user: str, password: str) -> None:
        """A new password for user ``user`` (an id)."""
        url = f"{self.url}/users/{user}"
        body = {"user": {"password": password}}
        self._send(
            lambda: http_client.send_json("PATCH", url, body, self.timeout, self.headers),
            "PATCH user (its password)",
        )


def register(
    lab: Lab,
    keystone_url: str,
    vip: str,
    shared: Mapping[str, str],
    services: Sequence[ApiService] = catalog.SERVICES,
) -> None:
    """The service project, the monitor user (reader) and each service's Keystone user (admin
    on the service project: keystonemiddleware validates tokens with it), and each service's
    catalog entry with its endpoints on the virtual IP, through the Keystone at
    ``keystone_url``."""
    admin = api.Credentials(
        f"{keystone_url}/v3", ADMIN_USER, shared["admin"], ADMIN_PROJECT, "Default", "Default"
    )
    keystone = KeystoneAdmin(keystone_url, token_for(lab, admin), lab.switch().call, 10.0)
    project = keystone.ensure(
        "projects",
        f"name={SERVICE_PROJECT}&domain_id=default",
        {"project": {"name": SERVICE_PROJECT, "domain_id": "default"}},
    )
    roles = {name: keystone.find("roles", f"name={name}") for name in ("admin", "reader")}
    users = [(MONITOR_USER, shared["monitor"], "reader")]
    users += [
        (service.user, shared[keystone_secret(service)], "admin")
        for service in services
        if service.lab.authtoken
    ]
    for _, _, role in users:
        if roles[role] is None:
            raise LabError(f"keystone has no {role} role (keystone-manage bootstrap makes it)")

    def user(name: str, password: str, role: str) -> None:
        user_id = keystone.ensure(
            "users",
            f"name={name}&domain_id=default",
            {"user": {"name": name, "domain_id": "default", "password": password}},
        )
        keystone.grant(project, user_id, str(roles[role]))

    def entry(service: ApiService, entry: CatalogEntry) -> None:
        service_id = keystone.ensure(
            "services",
            f"type={entry.type}",
            {"service": {"name": entry.name, "type": entry.type}},
        )
        url = api.endpoint_url(vip, service.port) + entry.path
        for interface in ("public", "internal", "admin"):
            keystone.ensure(
                "endpoints",
                f"service_id={service_id}&interface={interface}",
                {
                    "endpoint": {
                        "service_id": service_id,
                        "interface": interface,
                        "url": url,
                        "region_id": REGION,
                    }
                },
            )

    # Each user and each catalog entry on its own: keystone's workers take them side by side
    # (one after another, they took 51 s for six services on two busy cores).
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="register") as pool:
        futures = [pool.submit(user, *row) for row in users]
        futures += [
            pool.submit(entry, service, service.lab.catalog)
            for service in services
            if service.lab.catalog is not None
        ]
        for future in futures:
            future.result()


# -- provisioning ----------------------------------------------------------------------------


def _secret_file(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    os.chown(path, 0, 0)
    path.write_text(text)


def _service_file(path: Path, text: str, gid: int) -> None:
    """A configuration file with passwords in it that the service's user reads: root:group 0640
    (``gid``: the group's id on the node)."""
    path.touch(mode=0o640, exist_ok=True)
    os.chown(path, 0, gid)
    os.chmod(path, 0o640)
    path.write_text(text)


def _copy_with_owners(source: Path, target: Path) -> None:
    """``source`` copied over ``target`` with each file's mode and owner (copytree keeps modes
    only: /etc/keystone/keystone.conf is root:keystone 0640, unreadable by keystone as root's)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    for directory, subdirs, files in os.walk(source):
        for name in [".", *subdirs, *files]:
            origin = Path(directory, name)
            copy = target / origin.relative_to(source)
            info = os.lstat(origin)
            os.lchown(copy, info.st_uid, info.st_gid)


def _shared_secrets(
    first_root: Path, rabbitmq_password: Optional[str], services: Sequence[ApiService]
) -> dict[str, str]:
    """The passwords every node shares: those node1 has (its databases were made with them),
    else new ones."""
    shared = {}
    for key, path in secret_files(services).items():
        existing = first_root / path.lstrip("/")
        text = existing.read_text().strip() if existing.exists() else ""
        shared[key] = text or secrets.token_hex(16)
    if rabbitmq_password:
        shared["rabbitmq"] = rabbitmq_password
    return shared


def _write_node_files(
    lab: Lab,
    name: str,
    vip: str,
    shared: Mapping[str, str],
    database_host: str,
    services: Sequence[ApiService],
) -> None:
    handle = lab.node(name)
    root = handle.root
    accounts = handle.accounts
    nodes = lab.load().nodes
    members = [node.name for node in nodes]
    passwords = {**shared, "transport_url": transport_url(members, shared["rabbitmq"])}
    cache = memcache_servers([node.address for node in nodes])
    keystone_vip = api.endpoint_url(vip, IDENTITY.port) + "/v3"
    keystone_here = api.endpoint_url(handle.address, IDENTITY.port) + "/v3"
    for service in services:
        config_dir = Path(service.config_dir)
        private = root / config_dir.relative_to("/")
        if not private.is_dir():
            raise LabError(
                f"{name} has no private {config_dir}: the lab was made before {service.name} "
                "was installed; take it down and up again"
            )
        _copy_with_owners(handle.system / config_dir.relative_to("/"), private)
        owner = accounts.ids(service.user)
        log_dir = root / service.log_dir.lstrip("/")
        log_dir.mkdir(exist_ok=True)
        os.chown(log_dir, *owner)
        os.chmod(log_dir, 0o750)
        for lock_dir in service.lab.lock_dirs:
            (root / lock_dir.lstrip("/")).mkdir(exist_ok=True)
            os.chown(root / lock_dir.lstrip("/"), *owner)
        processes, threads = service.lab.workers
        ini = Path(service.uwsgi_ini).relative_to("/")
        (root / ini).write_text(
            trimmed_uwsgi_ini((handle.system / ini).read_text(), processes, threads)
        )
        # what the agent will refuse to start with, refused now
        api.read_uwsgi_ini(str(root / ini), f"{handle.address}:1")
        _service_file(
            root / service.config.lstrip("/"),
            service_config(service, name, handle.address, vip, passwords, database_host, cache),
            accounts.gid(service.user),
        )
        # keystone's deep monitor asks this node's keystone; the others' ask through the
        # virtual IP, where they validate the token themselves
        auth_url = keystone_here if service is IDENTITY else keystone_vip
        _secret_file(
            root / service.monitor_credentials.lstrip("/"),
            credentials_text(auth_url, MONITOR_USER, shared["monitor"], SERVICE_PROJECT),
        )
    for key, path in secret_files(services).items():
        _secret_file(root / path.lstrip("/"), shared[key] + "\n")
    _secret_file(
        root / galera_check.CREDENTIALS.lstrip("/"), check_credentials_text(shared["check"])
    )
    _secret_file(
        root / ADMIN_CREDENTIALS.lstrip("/"),
        credentials_text(keystone_vip, ADMIN_USER, shared["admin"], ADMIN_PROJECT),
    )
    handle.set_sysctls(SYSCTLS)


def _copy_replicated(lab: Lab, source: str, targets: Sequence[str], service: ApiService) -> None:
    """``service``'s replicated directories of node ``source`` (keystone's Fernet and
    credential keys), the same on every other node."""
    origin = lab.node(source).root
    for name in targets:
        root = lab.node(name).root
        for directory in service.lab.replicated_dirs:
            relative = directory.lstrip("/")
            shutil.rmtree(root / relative, ignore_errors=True)
            shutil.copytree(origin / relative, root / relative, symlinks=True)
            _copy_with_owners(origin / relative, root / relative)


class _Timer:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.timings: dict[str, float] = {}

    def step(self, what: str, work: Callable[[], object]) -> None:
        started = time.monotonic()
        work()
        seconds = time.monotonic() - started
        self.timings[what] = round(seconds, 1)
        self.lab.progress(f"openstack: {what}: {seconds:.1f}s")


def wait_for_database(
    lab: Lab, node: str, address: str, check_command: str, timeout: float = 60.0
) -> None:
    """Until the Galera node behind HAProxy on ``address`` (the database VIP) passes HAProxy's
    own health check, asked from ``node``: the path the API services' connections take."""
    runner = lab.node_runner(node)
    argv = [check_command, "-", "-", address, str(haproxy.DATABASE_PORT)]
    last = [""]

    def passes() -> bool:
        result = runner.run(argv, timeout=10)
        last[0] = result.output_line()
        return result.ok

    try:
        _wait(passes, timeout, f"the database through HAProxy on {address}", interval=1.0)
    except LabError as err:
        raise LabError(f"{err} ({last[0]})") from None


def _setup_steps(
    lab: Lab,
    node: str,
    service: ApiService,
    values: Mapping[str, str],
    timer: _Timer,
    hidden: Sequence[str],
) -> None:
    """``service``'s setup commands, in order, on ``node`` as the service's user."""
    runner = lab.node_runner(node)
    for step in service.lab.setup:
        argv = as_user(service.user, [word.format_map(values) for word in step.argv])
        env = {key: value.format_map(values) for key, value in step.env} or None
        timer.step(
            step.what,
            lambda a=argv, w=step.what, e=env, ok=step.accept: _run(  # type: ignore[misc]
                runner, a, f"{node}: {w}", env=e, hidden=hidden, accept=ok
            ),
        )


def provision(
    lab: Lab,
    rabbitmq_password: Optional[str] = None,
    nodes: Sequence[str] = NODES,
    database_vip: Optional[str] = None,
    check_command: str = "",
    services: Sequence[ApiService] = catalog.SERVICES,
) -> dict[str, object]:
    """Configure ``services`` (keystone first) on every node and initialise their databases
    through node1, given the lab's Galera up under Pacemaker (see the module docstring):
    through HAProxy on ``database_vip`` (checked by ``check_command``) when given, else at each
    node's own Galera. Leaves no API service running. Raises :class:`LabError` naming the step
    that failed.

    Returns what tests need: ``vip``, ``prefix``, ``urls`` ({service: its base URL on the
    VIP}), ``keystone_url`` (on the VIP, with /v3), ``admin_credentials`` (a host path, root
    0600, that ``read_openstack_credentials`` reads), ``admin_password``,
    ``monitor_credentials`` ({service: path inside a node}), ``haproxy_config`` (a host path),
    ``database_host`` (the database VIP or 127.0.0.1) and ``timings`` ({step: seconds}).
    """
    if IDENTITY not in services:
        raise LabError(f"the lab's API services need {IDENTITY.name}: every other validates tokens")
    system = lab.system()
    programs = {step.argv[0] for service in services for step in service.lab.setup}
    for program in sorted(programs) + [UWSGI, MARIADB, SETPRIV]:
        if not os.access(system / program.lstrip("/"), os.X_OK):
            packages = [p for service in services for p in service.lab.packages]
            raise LabError(f"{program} is missing: apt install {' '.join(packages)} mariadb-client")
    state = lab.load()
    network = ipaddress.ip_network(state.subnet)
    vip = vip_of(state.subnet)
    first = nodes[0]
    database_host = database_vip or LOCAL_DATABASE
    check_command = check_command or galera_check_command()
    shared = _shared_secrets(lab.node(first).root, rabbitmq_password, services)
    hidden = list(shared.values())
    timer = _Timer(lab)
    runner = lab.node_runner(first)
    values = {
        "admin_user": ADMIN_USER,
        "admin_project": ADMIN_PROJECT,
        "admin_password": shared["admin"],
        "region": REGION,
        "keystone_url": api.endpoint_url(vip, IDENTITY.port),
    }

    def files() -> None:
        for name in nodes:
            _write_node_files(lab, name, vip, shared, database_host, services)

    timer.step("configuration files on every node", files)
    timer.step(
        "databases and users",
        lambda: _run(
            runner,
            [MARIADB, "--batch"],
            "creating the databases",
            60,
            stdin=database_sql(shared, shared["check"], state.subnet, services),
            hidden=hidden,
        ),
    )
    if database_vip:
        timer.step(
            "the database through HAProxy on its VIP",
            lambda: wait_for_database(lab, first, database_vip, check_command),
        )
    keystone_url = api.endpoint_url(lab.node(first).address, IDENTITY.port)

    def identity_chain() -> None:
        _setup_steps(lab, first, IDENTITY, values, timer, hidden)
        timer.step(
            "key repositories copied", lambda: _copy_replicated(lab, first, nodes[1:], IDENTITY)
        )
        # provisioning again, with keystone running (by hand or by Pacemaker): use that one
        running = answers_version(lab, keystone_url, IDENTITY.name)
        if not running:
            timer.step(
                f"{IDENTITY.name} started on {first} for registration",
                lambda: start_api(lab, first, IDENTITY.name),
            )
        try:
            timer.step(
                "service project, users, catalog endpoints (REST)",
                lambda: register(lab, keystone_url, vip, shared, services),
            )
        finally:
            if not running:
                timer.step(
                    f"{IDENTITY.name} stopped on {first}",
                    lambda: stop_api(lab, first, IDENTITY.name),
                )

    def others_chain() -> None:
        for service in services:
            if service is not IDENTITY:
                _setup_steps(lab, first, service, values, timer, hidden)

    def both() -> None:
        # each chain is CPU-bound on one core, on different databases
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="provision") as pool:
            chains = [pool.submit(identity_chain), pool.submit(others_chain)]
            for chain in chains:
                chain.result()

    timer.step("the services' databases (identity beside the others)", both)
    config = lab.directory / HAPROXY_CONFIG
    backends = [(name, lab.node(name).address) for name in nodes]
    config.write_text(
        haproxy_config(
            vip, backends, services, database_vip=database_vip, check_command=check_command
        )
    )
    admin_file = lab.node(first).root / ADMIN_CREDENTIALS.lstrip("/")
    return {
        "vip": vip,
        "prefix": network.prefixlen,
        "urls": {service.name: api.endpoint_url(vip, service.port) for service in services},
        "keystone_url": api.endpoint_url(vip, IDENTITY.port) + "/v3",
        "admin_credentials": str(admin_file),
        "admin_password": shared["admin"],
        "monitor_credentials": {service.name: service.monitor_credentials for service in services},
        "haproxy_config": str(config),
        "database_host": database_host,
        "timings": timer.timings,
    }
