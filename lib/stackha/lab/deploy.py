"""The whole OpenStack control plane in the lab, deployed the way the README tells an operator
to: a site file, ``stackha cib render``, ``check`` and ``apply`` — what ``make lab`` runs after
``stackha lab up``.

In two stages, because the API services' databases live in the Galera that Pacemaker runs:

1. provisioning of MariaDB Galera and RabbitMQ on every node (stackha.lab.galera, .rabbitmq),
   the fencing passwords (root-only files in the lab's directory, which every node sees; the
   CIB names them in ``password_script``), HAProxy's configuration (the APIs on the VIP, the
   database path on the database VIP: one Galera node at a time, checked by
   ``stackha-galera-check``); then the site rendered with ``api_services = systemd`` — the
   infrastructure: HAProxy, the two VIPs, Galera, RabbitMQ, memcached,
   fencing through ``fence_stackha_ipmi`` (level 1) and ``fence_stackha_pdu`` (level 2) —
   checked and applied, and waited for;
2. the API services (stackha.services.api_catalog) provisioned on that Galera
   (stackha.lab.openstack), their database
   connections to the database VIP (``database_path = haproxy``), the health check's user and
   credentials with them; then the same site with ``api_services = pacemaker`` applied:
   ``apply`` shows the diff, the API clones.

Every step reports its seconds through the lab's progress callback. What ``stackha cib apply``
prints (two whole CIB diffs, a few hundred lines) goes to ``deploy.log`` in the lab's
directory, named in one progress line, not between the progress lines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from stackha.cib.render import SCHEMA_DIR, installed_schema, render_cib
from stackha.cib.site import read_site
from stackha.lab import galera as lab_galera
from stackha.lab import openstack
from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.lab.lab import (
    BMC_PORT,
    BMC_USER,
    CLUSTER_NAME,
    DEPLOY_LOG,
    FENCING_DIR,
    HAPROXY_CONFIG,
    PDU_USER,
    RENDERED_CIBS,
    SITE_FILE,
    Lab,
    NodeState,
    write_private,
)
from stackha.lab.namespaces import LabError
from stackha.services import api_catalog as catalog
from stackha.services import openstack_api as api

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Callable

    from stackha.services.api_catalog import ApiService

FIRST = "node1"
HEALTHY_TIMEOUT_S = 420.0
# memcached (keystone's cache) with the infrastructure: its clone runs before the API services
# are provisioned, and keystone is ordered after it (at start-up only)
INFRASTRUCTURE = ("haproxy", "galera", "rabbitmq", "memcached")
SERVICES = INFRASTRUCTURE + catalog.NAMES
CLONES = SERVICES


def api_services(names: Sequence[str] = ()) -> tuple[ApiService, ...]:
    """The API services of ``names`` in the catalog's order (keystone first), every one when
    none is named; LabError for a name the catalog has not, or a set without keystone (every
    other validates its tokens with it)."""
    if not names:
        return catalog.SERVICES
    unknown = [name for name in names if name not in catalog.NAMES]
    if unknown:
        raise LabError(f"unknown API service {unknown[0]!r} (known: {' '.join(catalog.NAMES)})")
    if catalog.IDENTITY.name not in names:
        raise LabError(
            f"the API services need {catalog.IDENTITY.name}: every other validates tokens with it"
        )
    return tuple(service for service in catalog.SERVICES if service.name in names)


def site_text(
    lab: Lab, api_services: str = "pacemaker", apis: Sequence[ApiService] = catalog.SERVICES
) -> str:
    """The lab's site description: its nodes and their BMCs, the PDU, the VIP of the APIs and
    the database VIP on HAProxy, every service, fencing on (see
    crm-templates/site.example.ini)."""
    state = lab.load()
    inventory = lab.inventory()
    pdu = inventory["pdu"]
    assert isinstance(pdu, dict)
    prefix = state.subnet.split("/")[1]
    fencing = lab.directory / FENCING_DIR
    lines = [
        "# The lab's site, written by stackha.lab.deploy.",
        "[cluster]",
        f"name = {CLUSTER_NAME}",
        f"services = {' '.join([*INFRASTRUCTURE, *(service.name for service in apis)])}",
        f"api_services = {api_services}",
        "database_path = haproxy",
        "stonith_enabled = true",
        "",
        "[properties]",
        # a fresh lab otherwise waits 20 s for a DC that cannot exist yet (as lab up seeds it)
        "dc-deadtime = 2s",
        "",
    ]
    lines += node_sections(state.nodes, prefix, str(fencing / "bmc.password"))
    outlets = " ".join(f"{name}:{outlet}" for outlet, name in pdu["outlets"].items())
    lines += [
        "[pdu lab]",
        f"address = {pdu['address']}",
        "transport = telnet",
        f"username = {PDU_USER}",
        f"password_file = {fencing / 'pdu.password'}",
        f"outlets = {outlets}",
        "",
        "[vip public]",
        f"address = {openstack.vip_of(state.subnet)}/{prefix}",
        f"nic = {openstack.NIC}",
        "",
        "[vip database]",
        f"address = {openstack.database_vip_of(state.subnet)}/{prefix}",
        f"nic = {openstack.NIC}",
        "serves = database",
        "",
        "[service haproxy]",
        f"config = {lab.directory / HAPROXY_CONFIG}",
        "",
        "[service rabbitmq]",
        f"users = {json.dumps(lab_rabbitmq.USERS)}",
        f"policies = {json.dumps(lab_rabbitmq.POLICIES)}",
        "",
    ]
    for service in apis:
        lines += [f"[service {service.name}]", f"credentials = {service.monitor_credentials}", ""]
    return "\n".join(lines)


def node_sections(nodes: Iterable[NodeState], prefix: str, password_file: str) -> list[str]:
    """The site file's ``[node NAME]`` sections of a lab's nodes (the namespace lab's or the
    Vagrant lab's: the same plan): each node's address and its BMC, whose password is read
    from ``password_file`` on the node."""
    lines: list[str] = []
    for node in nodes:
        lines += [
            f"[node {node.name}]",
            f"address = {node.address}/{prefix}",
            f"bmc = {node.bmc_address}",
            f"bmc_port = {BMC_PORT}",
            f"bmc_username = {BMC_USER}",
            f"bmc_password_file = {password_file}",
            "",
        ]
    return lines


def _secret(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, text + "\n")


def write_fencing_passwords(lab: Lab) -> None:
    """The BMCs' and the PDU's passwords, each in a root-only file the CIB's password_script
    reads on whichever node runs the device."""
    inventory = lab.inventory()
    nodes = inventory["nodes"]
    pdu = inventory["pdu"]
    assert isinstance(nodes, list) and isinstance(pdu, dict)
    passwords = {str(node["bmc"]["password"]) for node in nodes}
    if len(passwords) != 1:
        raise LabError("the lab's BMCs have different passwords: one file cannot hold them")
    _secret(lab.directory / FENCING_DIR / "bmc.password", passwords.pop())
    _secret(lab.directory / FENCING_DIR / "pdu.password", str(pdu["password"]))


def first_failure(checks: str) -> str:
    """``: <check>: <problem>`` of the first failed check in ``stackha cib check``'s output
    (``FAIL  name`` and its indented problems), or nothing."""
    lines = checks.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("FAIL"):
            problem = lines[index + 1].strip() if index + 1 < len(lines) else ""
            name = line[len("FAIL") :].strip()
            return f": {name}: {problem}" if problem else f": {name}"
    return ""


class Deployer:
    """One deployment's steps, timed; what ``stackha cib apply`` prints goes to ``log``."""

    def __init__(
        self, lab: Lab, stackha: str, apis: Sequence[ApiService] = catalog.SERVICES
    ) -> None:
        self.lab = lab
        self.stackha = stackha  # the stackha command the nodes run
        self.apis = apis
        self.log = lab.directory / DEPLOY_LOG
        self.timings: dict[str, float] = {}

    def start_log(self) -> None:
        self.log.write_text("")
        self.lab.progress(f"CIB diffs: {self.log}")

    def step(self, what: str, work: Callable[[], object]) -> object:
        self.lab.progress(f"{what} ...")
        started = time.monotonic()
        result = work()
        seconds = time.monotonic() - started
        self.timings[what] = round(seconds, 1)
        self.lab.progress(f"{what}: {seconds:.1f}s")
        return result

    def apply(self, api_services: str) -> None:
        """The site rendered here, then checked and applied with stackha's own command, run
        inside node1 as an operator would run it there (``cib apply`` checks first: schema,
        crm_verify and the crm_simulate scenarios, with the nodes' own Pacemaker)."""
        site_path = self.lab.directory / SITE_FILE
        site_path.write_text(site_text(self.lab, api_services, self.apis))
        cib_path = self.lab.directory / RENDERED_CIBS[api_services == "pacemaker"]
        # the nodes' Pacemaker's newest schema, which may not be the host's (nodes of a release)
        schema = installed_schema(self.lab.system() / SCHEMA_DIR.relative_to("/"))
        site = read_site(site_path.read_text(), str(site_path))
        cib_path.write_text(render_cib(site, validate_with=schema))
        self.push(cib_path)

    def push(self, cib_path: Path) -> None:
        """``stackha cib apply`` of ``cib_path`` in node1; what it prints (its checks, its
        diff, its notes) goes to the log, not to the screen. A refusal names the first check
        that failed and its first problem."""
        result = self.lab.node_runner(FIRST).run(
            [self.stackha, "cib", "apply", str(cib_path)], timeout=180
        )
        with self.log.open("a") as log:
            log.write(f"$ stackha cib apply {cib_path}   (exit {result.returncode})\n")
            log.write(result.stdout + result.stderr + "\n")
        if not result.ok:
            raise LabError(
                f"stackha cib apply {cib_path}: {result.stderr.strip()}"
                f"{first_failure(result.stdout)} (see {self.log})"
            )

    def wait(
        self, what: str, healthy: Callable[[], bool], timeout: float = HEALTHY_TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout
        while not healthy():
            if time.monotonic() > deadline:
                raise LabError(f"{what}: not healthy within {timeout:.0f}s")
            time.sleep(1.0)


def clones_started(lab: Lab, clones: tuple[str, ...]) -> bool:
    """Every instance of every clone in ``clones`` active (Started or Promoted) and none
    failed, on every node, as node1 sees it."""
    try:
        status = lab.node(FIRST).status()
    except LabError:
        return False
    if status is None or not status.dc:
        return False
    names = [node.name for node in lab.load().nodes]
    for clone in clones:
        instances = status.instances(clone)
        where = {n for r in instances if r.active and not r.failed for n in r.nodes}
        if where != set(names) or any(r.failed for r in instances):
            return False
    return True


def fence_devices_started(lab: Lab) -> bool:
    try:
        status = lab.node(FIRST).status()
    except LabError:
        return False
    if status is None:
        return False
    devices = [r for r in status.resources if r.agent.startswith("stonith:")]
    return bool(devices) and all(r.active and not r.failed for r in devices)


def deploy(
    lab: Lab, stackha: str, apis: Sequence[ApiService] = catalog.SERVICES
) -> dict[str, object]:
    """Deploy everything, with the API services ``apis`` (see the module docstring); returns
    the endpoints, the timings, the API services' names (``apis``) and the path of the apply
    log (``deploy_log``)."""
    deployer = Deployer(lab, stackha, apis)
    deployer.start_log()
    clones = INFRASTRUCTURE + tuple(service.name for service in apis)
    state = lab.load()
    vip = openstack.vip_of(state.subnet)
    database_vip = openstack.database_vip_of(state.subnet)
    check_command = openstack.galera_check_command(stackha)
    names = [node.name for node in state.nodes]
    deployer.step("Galera provisioned on every node", lambda: lab_galera.provision(lab))
    shared = deployer.step(
        "RabbitMQ provisioned on every node", lambda: lab_rabbitmq.provision(lab)
    )
    assert isinstance(shared, dict)
    write_fencing_passwords(lab)
    for name in names:
        # HAProxy binds the VIP on every node: before the infrastructure CIB starts it
        lab.node(name).set_sysctls(openstack.SYSCTLS)
    backends = [(name, lab.node(name).address) for name in names]
    (lab.directory / HAPROXY_CONFIG).write_text(
        openstack.haproxy_config(
            vip, backends, database_vip=database_vip, check_command=check_command
        )
    )
    deployer.step(
        "infrastructure CIB rendered, checked, applied", lambda: deployer.apply("systemd")
    )
    deployer.step(
        "Galera Promoted and Synced on every node",
        lambda: deployer.wait("Galera", lambda: lab_galera.healthy(lab, names)),
    )
    deployer.step(
        "RabbitMQ clustered on every node",
        lambda: deployer.wait(
            "RabbitMQ", lambda: lab_rabbitmq.healthy(lab, str(shared["monitor"]), names)
        ),
    )
    info = deployer.step(
        "the API services provisioned",
        lambda: openstack.provision(
            lab,
            rabbitmq_password=str(shared["openstack"]),
            nodes=names,
            database_vip=database_vip,
            check_command=check_command,
            services=apis,
        ),
    )
    assert isinstance(info, dict)
    deployer.step("full CIB rendered, checked, applied", lambda: deployer.apply("pacemaker"))
    deployer.step(
        "every clone started on every node",
        lambda: deployer.wait("the clones", lambda: clones_started(lab, clones)),
    )
    deployer.step(
        "every API service answers through the VIP",
        lambda: deployer.wait(
            "the APIs through the VIP",
            lambda: all(
                openstack.answers_version(lab, api.endpoint_url(vip, service.port), service.name)
                for service in apis
            ),
            120,
        ),
    )
    deployer.step(
        "fence devices started",
        lambda: deployer.wait("fence devices", lambda: fence_devices_started(lab), 120),
    )
    return {
        **info,
        "rabbitmq_monitor_password": shared["monitor"],
        "apis": [service.name for service in apis],
        "clones": list(clones),
        "database_vip": database_vip,
        "site": str(lab.directory / SITE_FILE),
        "deploy_log": str(deployer.log),
        "deploy_timings": deployer.timings,
    }


def endpoints_text(info: Mapping[str, object]) -> str:
    """What to try once the lab is up, for the README's ``make lab``."""
    urls = info["urls"]
    assert isinstance(urls, dict)
    width = max(len(name) for name in [*urls, "database"]) + 2
    lines = [f"{name:<{width}}{url}" for name, url in urls.items()]
    lines[0] += f"   (admin credentials: {info['admin_credentials']})"
    identity = urls[openstack.IDENTITY.name]
    pad = " " * width
    lines += [
        f"{'database':<{width}}{info['database_vip']}:3306 through HAProxy, to one Galera node "
        "at a time",
        f"{'try:':<{width}}stackha lab exec node1 -- curl -s {identity}/v3",
        f"{pad}stackha lab exec node1 -- stackha status",
        f"{pad}stackha lab crash NODE   (the cluster fences it through its BMC)",
    ]
    return "\n".join(lines) + "\n"
