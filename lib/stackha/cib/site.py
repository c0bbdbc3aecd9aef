"""The site description: the nodes, their addresses, BMCs and PDU outlets, the VIPs and the
services of one OpenStack controller cluster, in an INI file that ``configparser`` reads on
any Python 3.9 (``crm-templates/site.example.ini`` explains every key).

``read_site`` checks the whole file and raises :class:`SiteError` with every problem found,
not the first only: an operator fixes a site file in one pass.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
from dataclasses import dataclass, field

from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional, Union

    Address = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

# What a site may run, and which of them are clones of one of stackha's agents.
INFRASTRUCTURE = ("haproxy", "galera", "rabbitmq", "memcached")
API_SERVICES = api_catalog.NAMES
KNOWN_SERVICES = INFRASTRUCTURE + API_SERVICES
API_MODES = ("pacemaker", "systemd")
# How the API services reach Galera: haproxy (the default, what the OpenStack HA Guide, TripleO
# and Kolla do): through HAProxy on a VIP that ``serves = database``, to one Galera node at a
# time; local: each to its own node's Galera (every node a writer).
DATABASE_PATHS = ("haproxy", "local")
PDU_TRANSPORTS = ("telnet", "ssh")
# Node names as Corosync and Pacemaker take them, and ids as the CIB schema takes them.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

CLUSTER_KEYS = {"name", "services", "api_services", "database_path", "stonith_enabled"}
NODE_KEYS = {"address", "bmc", "bmc_port", "bmc_username", "bmc_password_file"}
VIP_KEYS = {"address", "nic", "serves"}
PDU_KEYS = {"address", "port", "transport", "username", "password_file", "outlets"}
SERVICE_RESERVED = {"agent", "start_timeout", "stop_timeout", "monitor_interval", "monitor_timeout"}


class SiteError(Exception):
    """The site file cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Bmc:
    address: str
    port: int
    username: str
    password_file: str


@dataclass(frozen=True)
class Node:
    name: str
    address: Address
    bmc: Optional[Bmc] = None


@dataclass(frozen=True)
class Vip:
    name: str
    address: Address
    nic: str
    serves: str  # haproxy, database, galera, or an active/passive service's name

    @property
    def resource_id(self) -> str:
        return f"vip-{self.name}"


@dataclass(frozen=True)
class Pdu:
    name: str
    address: str
    port: Optional[int]
    transport: str
    username: str
    password_file: str
    outlets: tuple[tuple[str, str], ...]  # (node, outlet)


@dataclass(frozen=True)
class Service:
    """A service's agent parameters from its ``[service NAME]`` section; for an active/passive
    service of the site's own (``agent = class:provider:type`` or ``class:type``), also its
    agent and operation settings."""

    name: str
    parameters: tuple[tuple[str, str], ...] = ()
    agent: str = ""
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Site:
    name: str
    services: tuple[str, ...]
    api_services: str  # pacemaker: the API clones are in the CIB; systemd: left out
    stonith_enabled: bool
    nodes: tuple[Node, ...]
    vips: tuple[Vip, ...]
    pdus: tuple[Pdu, ...]
    service_settings: tuple[Service, ...]
    properties: tuple[tuple[str, str], ...] = field(default=())
    database_path: str = "haproxy"  # see DATABASE_PATHS

    def database_vip(self) -> Optional[Vip]:
        """The VIP the API services reach Galera through (``serves = database``), if any."""
        return next((vip for vip in self.vips if vip.serves == "database"), None)

    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]

    def runs(self, service: str) -> bool:
        """Whether ``service`` is in the CIB (API services only when Pacemaker runs them)."""
        if service in API_SERVICES and self.api_services != "pacemaker":
            return False
        return service in self.services or self.active_passive(service) is not None

    def settings_of(self, service: str) -> Service:
        for entry in self.service_settings:
            if entry.name == service:
                return entry
        return Service(service)

    def active_passive(self, name: str) -> Optional[Service]:
        entry = self.settings_of(name)
        return entry if entry.agent else None

    def active_passive_services(self) -> list[Service]:
        return [entry for entry in self.service_settings if entry.agent]


def _words(value: str) -> list[str]:
    return value.replace(",", " ").split()


def _interface(value: str, what: str, problems: list[str]) -> Optional[Address]:
    if "/" not in value:
        problems.append(f"{what}: address {value!r} needs its prefix length (e.g. /24)")
        return None
    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        problems.append(f"{what}: {value!r} is not an IP address with a prefix length")
        return None


def _ip(value: str, what: str, problems: list[str]) -> Optional[str]:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        problems.append(f"{what}: {value!r} is not an IP address")
        return None


def _port(value: str, what: str, problems: list[str]) -> Optional[int]:
    if value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    problems.append(f"{what}: {value!r} is not a port number")
    return None


def _unknown_keys(section: Mapping[str, str], allowed: set[str], what: str) -> list[str]:
    return [f"{what}: unknown key {key!r}" for key in section if key not in allowed]


def _parse(text: str, source: str) -> tuple[configparser.ConfigParser, list[str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=True, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    try:
        parser.read_string(text, source=source)
    except configparser.DuplicateSectionError as err:
        return parser, [f"section [{err.section}] appears twice (line {err.lineno})"]
    except configparser.DuplicateOptionError as err:
        return parser, [f"[{err.section}]: key {err.option!r} appears twice (line {err.lineno})"]
    except configparser.Error as err:
        return parser, [" ".join(str(err).split())]
    return parser, []


def read_site(text: str, source: str = "site") -> Site:
    """The site ``text`` (INI) describes; :class:`SiteError` with every problem otherwise."""
    parser, problems = _parse(text, source)
    if problems:
        raise SiteError(source, problems)
    sections: dict[str, list[tuple[str, configparser.SectionProxy]]] = {}
    for title in parser.sections():
        kind, _, name = title.partition(" ")
        name = name.strip()
        if kind in ("cluster", "properties"):
            if name:
                problems.append(f"[{title}]: [{kind}] takes no name")
        elif kind not in ("node", "vip", "pdu", "service"):
            problems.append(
                f"[{title}]: unknown section (cluster, properties, node, vip, pdu, service)"
            )
            continue
        elif not NAME.match(name):
            problems.append(f"[{title}]: {kind} name {name!r} is missing or not a valid name")
            continue
        sections.setdefault(kind, []).append((name, parser[title]))

    cluster = parser["cluster"] if parser.has_section("cluster") else None
    if cluster is None:
        problems.append("[cluster] is missing")
        cluster_name, services, api_mode, stonith = "", [], "pacemaker", True
        database_path = "haproxy"
    else:
        problems += _unknown_keys(cluster, CLUSTER_KEYS, "[cluster]")
        cluster_name = cluster.get("name", "").strip()
        if not cluster_name:
            problems.append("[cluster]: name is missing")
        services = _words(cluster.get("services", ""))
        if not services:
            problems.append(f"[cluster]: services is empty (any of {' '.join(KNOWN_SERVICES)})")
        api_mode = cluster.get("api_services", "pacemaker").strip()
        if api_mode not in API_MODES:
            problems.append(
                f"[cluster]: api_services = {api_mode!r}: pacemaker (the API services are "
                "clones in Pacemaker) or systemd (infrastructure only)"
            )
        database_path = cluster.get("database_path", "haproxy").strip()
        if database_path not in DATABASE_PATHS:
            problems.append(
                f"[cluster]: database_path = {database_path!r}: haproxy (through HAProxy on a "
                "VIP with serves = database, to one Galera node at a time) or local (each API "
                "service to its own node's Galera)"
            )
        stonith_text = cluster.get("stonith_enabled", "true").strip().lower()
        if stonith_text not in ("true", "false"):
            problems.append(f"[cluster]: stonith_enabled = {stonith_text!r}: true or false")
        stonith = stonith_text != "false"

    own_services = {name for name, section in sections.get("service", []) if "agent" in section}
    for service in services:
        if service not in KNOWN_SERVICES and service not in own_services:
            problems.append(
                f"[cluster]: unknown service {service!r} (known: {' '.join(KNOWN_SERVICES)}; "
                "an active/passive service of your own needs a [service NAME] with an agent)"
            )
    if len(set(services)) != len(services):
        problems.append("[cluster]: a service is listed twice in services")

    nodes, node_problems = _nodes(sections.get("node", []))
    problems += node_problems
    if not sections.get("node"):
        problems.append("no [node NAME] section: a cluster needs its nodes")
    node_names = [node.name for node in nodes]
    vips, vip_problems = _vips(sections.get("vip", []), nodes, services, own_services)
    problems += vip_problems
    problems += _database_path_problems(database_path, services, vips)
    pdus, pdu_problems = _pdus(
        sections.get("pdu", []), node_names, [n for n, _ in sections.get("node", [])]
    )
    problems += pdu_problems
    service_settings, service_problems = _services(sections.get("service", []), services)
    problems += service_problems
    problems += _duplicate_addresses(nodes, vips, pdus)
    if stonith and sections.get("node") and not any(n.bmc for n in nodes) and not pdus:
        problems.append(
            "stonith_enabled = true but no node has a bmc and there is no [pdu]: "
            "nothing could fence a node"
        )
    properties = tuple(parser["properties"].items()) if parser.has_section("properties") else ()
    if problems:
        raise SiteError(source, problems)
    return Site(
        name=cluster_name,
        services=tuple(services),
        api_services=api_mode,
        database_path=database_path,
        stonith_enabled=stonith,
        nodes=tuple(nodes),
        vips=tuple(vips),
        pdus=tuple(pdus),
        service_settings=tuple(service_settings),
        properties=properties,
    )


def _nodes(
    entries: Sequence[tuple[str, configparser.SectionProxy]],
) -> tuple[list[Node], list[str]]:
    nodes: list[Node] = []
    problems: list[str] = []
    for name, section in entries:
        what = f"[node {name}]"
        problems += _unknown_keys(section, NODE_KEYS, what)
        if "address" not in section:
            problems.append(f"{what}: address is missing")
            continue
        address = _interface(section["address"].strip(), what, problems)
        bmc = None
        if "bmc" in section:
            bmc_address = _ip(section["bmc"].strip(), f"{what} bmc", problems)
            port = _port(section.get("bmc_port", "623").strip(), f"{what} bmc_port", problems)
            username = section.get("bmc_username", "").strip()
            password_file = section.get("bmc_password_file", "").strip()
            if not username:
                problems.append(f"{what}: bmc_username is missing")
            if not password_file.startswith("/"):
                problems.append(
                    f"{what}: bmc_password_file must be an absolute path (a root-only file on "
                    "every node: the password never goes into the CIB)"
                )
            if bmc_address and port:
                bmc = Bmc(bmc_address, port, username, password_file)
        elif any(key.startswith("bmc_") for key in section):
            problems.append(f"{what}: bmc settings without bmc (its address)")
        if address is not None:
            nodes.append(Node(name, address, bmc))
    return nodes, problems


def _vips(
    entries: Sequence[tuple[str, configparser.SectionProxy]],
    nodes: Sequence[Node],
    services: Sequence[str],
    own_services: set[str],
) -> tuple[list[Vip], list[str]]:
    vips: list[Vip] = []
    problems: list[str] = []
    for name, section in entries:
        what = f"[vip {name}]"
        problems += _unknown_keys(section, VIP_KEYS, what)
        if "address" not in section:
            problems.append(f"{what}: address is missing")
            continue
        address = _interface(section["address"].strip(), what, problems)
        nic = section.get("nic", "").strip()
        if not nic:
            problems.append(f"{what}: nic (the interface it goes on) is missing")
        serves = section.get("serves", "haproxy").strip()
        if serves not in ("haproxy", "database", "galera") and serves not in own_services:
            problems.append(
                f"{what}: serves = {serves!r}: haproxy, database, galera, or an active/passive "
                "service with a [service NAME] section"
            )
        elif serves == "database":
            # HAProxy holds it and sends it to Galera: both must run
            missing = [s for s in ("haproxy", "galera") if s not in services]
            if missing:
                problems.append(
                    f"{what}: serves database (HAProxy in front of Galera), but "
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in "
                    "[cluster] services"
                )
        elif serves not in services:
            problems.append(f"{what}: serves {serves!r}, which is not in [cluster] services")
        if address is None:
            continue
        if nodes and not any(address.ip in node.address.network for node in nodes):
            networks = sorted({str(node.address.network) for node in nodes})
            problems.append(
                f"{what}: {address.ip} is outside every node's subnet ({' '.join(networks)}): "
                "no node could hold it"
            )
        vips.append(Vip(name, address, nic, serves))
    return vips, problems


def _database_path_problems(
    database_path: str, services: Sequence[str], vips: Sequence[Vip]
) -> list[str]:
    """The database path and the VIPs agree: haproxy needs one database VIP (when Galera and
    an API service run), local none."""
    database_vips = [vip.name for vip in vips if vip.serves == "database"]
    if len(database_vips) > 1:
        return [f"[vip {database_vips[1]}]: a second VIP with serves = database (one only)"]
    uses_galera = "galera" in services and any(s in services for s in API_SERVICES)
    if database_path == "haproxy" and uses_galera and not database_vips:
        return [
            "[cluster]: database_path = haproxy needs a [vip NAME] with serves = database: "
            "the address HAProxy listens on for the API services' database connections "
            "(or database_path = local)"
        ]
    if database_path == "local" and database_vips:
        return [
            f"[vip {database_vips[0]}]: serves = database, but database_path = local: every "
            "API service uses its own node's Galera (set database_path = haproxy, or remove it)"
        ]
    return []


def _pdus(
    entries: Sequence[tuple[str, configparser.SectionProxy]],
    node_names: Sequence[str],
    declared_nodes: Sequence[str],
) -> tuple[list[Pdu], list[str]]:
    pdus: list[Pdu] = []
    problems: list[str] = []
    for name, section in entries:
        what = f"[pdu {name}]"
        problems += _unknown_keys(section, PDU_KEYS, what)
        address = _ip(section.get("address", "").strip(), f"{what} address", problems)
        port = None
        if "port" in section:
            port = _port(section["port"].strip(), f"{what} port", problems)
        transport = section.get("transport", "telnet").strip()
        if transport not in PDU_TRANSPORTS:
            problems.append(f"{what}: transport = {transport!r}: telnet or ssh")
        username = section.get("username", "").strip()
        password_file = section.get("password_file", "").strip()
        if not username:
            problems.append(f"{what}: username is missing")
        if not password_file.startswith("/"):
            problems.append(f"{what}: password_file must be an absolute path")
        outlets: list[tuple[str, str]] = []
        for item in _words(section.get("outlets", "")):
            node, _, outlet = item.partition(":")
            if not outlet:
                problems.append(f"{what}: outlets entry {item!r} is not NODE:OUTLET")
            elif node not in declared_nodes:
                problems.append(
                    f"{what}: outlet {outlet} powers node {node!r}, which has no [node {node}]"
                )
            else:
                outlets.append((node, outlet))
        if not outlets:
            problems.append(f"{what}: outlets (NODE:OUTLET ...) is missing")
        if address:
            pdus.append(
                Pdu(name, address, port, transport, username, password_file, tuple(outlets))
            )
    return pdus, problems


def _services(
    entries: Sequence[tuple[str, configparser.SectionProxy]], services: Sequence[str]
) -> tuple[list[Service], list[str]]:
    result: list[Service] = []
    problems: list[str] = []
    for name, section in entries:
        what = f"[service {name}]"
        agent = section.get("agent", "").strip()
        if name in KNOWN_SERVICES and agent:
            problems.append(f"{what}: agent is for services of your own; {name} is stackha's")
        if name not in services:
            problems.append(f"{what}: {name} is not in [cluster] services")
        if agent and len(agent.split(":")) not in (2, 3):
            problems.append(f"{what}: agent = {agent!r}: CLASS:PROVIDER:TYPE or CLASS:TYPE")
        parameters = tuple((k, v) for k, v in section.items() if k not in SERVICE_RESERVED)
        settings = tuple((k, v) for k, v in section.items() if k in SERVICE_RESERVED - {"agent"})
        if settings and not agent:
            problems.append(f"{what}: {', '.join(k for k, _ in settings)} only with agent")
        result.append(Service(name, parameters, agent, settings))
    return result, problems


def _duplicate_addresses(
    nodes: Sequence[Node], vips: Sequence[Vip], pdus: Sequence[Pdu]
) -> list[str]:
    owners: dict[str, list[str]] = {}
    for node in nodes:
        owners.setdefault(str(node.address.ip), []).append(f"node {node.name}")
        if node.bmc:
            owners.setdefault(node.bmc.address, []).append(f"the BMC of {node.name}")
    for vip in vips:
        owners.setdefault(str(vip.address.ip), []).append(f"vip {vip.name}")
    for pdu in pdus:
        owners.setdefault(pdu.address, []).append(f"pdu {pdu.name}")
    return [
        f"address {address} is used twice: {' and '.join(users)}"
        for address, users in owners.items()
        if len(users) > 1
    ]
