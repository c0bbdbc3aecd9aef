"""A CIB from a site description and the templates in ``crm-templates/``.

Each template is a ``<configuration>`` fragment with ``${name}`` placeholders; a rendered
fragment's sections are merged into one CIB. What a template leaves to the renderer:

- an empty ``<instance_attributes>`` of one of stackha's agents gets the site's parameters
  for that service, each checked against the agent's own declaration;
- an empty ``<operations>`` gets the agent's advertised operations (the timeouts and monitor
  depths its meta-data gives, so the CIB and the agent cannot disagree); the depth-20 monitor
  of an agent with a ``credentials`` parameter (the API services) only with ``credentials``
  set (without them that monitor is not configured: exit 6 on every node);
- an ``nvpair`` or attribute whose value renders empty is left out (optional settings).

How the blocks compose into an OpenStack controller cluster is :func:`render_cib`'s body,
and docs/templates.md tells it in prose.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from stackha.agents import declaration
from stackha.cib.site import KNOWN_SERVICES, Service, Site
from stackha.install import source_dir
from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

    from stackha.ocf.spec import AgentSpec

SCHEMA_DIR = Path("/usr/share/pacemaker")
# Pacemaker 2.1.5, Debian 12's: what to render for when no Pacemaker is installed here.
DEFAULT_SCHEMA = "pacemaker-3.9"
# Promoted/Unpromoted, the role names rendered, are valid from this schema on (Pacemaker 2.1.0).
OLDEST_SCHEMA = (3, 7)
SECTIONS = (
    "crm_config",
    "nodes",
    "resources",
    "constraints",
    "fencing-topology",
    "rsc_defaults",
    "op_defaults",
)
# Operations the CIB gets from an agent's meta-data; the others are Pacemaker's own calls.
CONFIGURED_ACTIONS = ("start", "stop", "promote", "demote", "notify", "monitor")
DEEP_MONITOR = 20
SCHEMA_NAME = re.compile(r"^pacemaker-(\d+)\.(\d+)$")


class RenderError(Exception):
    """The site cannot be rendered; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def schema_version(name: str) -> tuple[int, int]:
    match = SCHEMA_NAME.match(name)
    if not match:
        raise RenderError([f"{name!r} is not a Pacemaker schema name (pacemaker-MAJOR.MINOR)"])
    return int(match.group(1)), int(match.group(2))


def installed_schema(schema_dir: Path = SCHEMA_DIR) -> str:
    """The newest ``pacemaker-X.Y`` schema installed here; DEFAULT_SCHEMA without Pacemaker."""
    versions = [
        (int(m.group(1)), int(m.group(2)))
        for path in schema_dir.glob("pacemaker-*.rng")
        for m in [SCHEMA_NAME.match(path.stem)]
        if m
    ]
    if not versions:
        return DEFAULT_SCHEMA
    major, minor = max(versions)
    return f"pacemaker-{major}.{minor}"


def template_dir() -> Path:
    return source_dir("crm-templates")


def agent_spec(name: str) -> AgentSpec:
    """stackha's OCF agent ``name``'s declaration."""
    try:
        return declaration(name).spec
    except KeyError:
        raise RenderError([f"agent {name}: stackha has no such OCF agent"]) from None


class Template:
    """One template file, rendered with values (XML-escaped) into a parsed fragment."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / name
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except OSError as err:
            raise RenderError([f"template {self.path}: {err.strerror}"]) from None

    def render(self, **values: object) -> etree._Element:
        escaped = {key: escape(str(value), {'"': "&quot;"}) for key, value in values.items()}
        try:
            text = string.Template(self.text).substitute(escaped)
        except KeyError as err:
            raise RenderError(
                [f"template {self.path.name}: no value for ${{{err.args[0]}}}"]
            ) from None
        parser = etree.XMLParser(remove_comments=True, remove_blank_text=True)
        root = etree.fromstring(text.encode("utf-8"), parser)
        for element in root.iter():
            for attribute, value in list(element.attrib.items()):
                if value == "":
                    del element.attrib[attribute]
        for nvpair in root.iter("nvpair"):
            if "value" not in nvpair.attrib:
                parent = nvpair.getparent()
                assert parent is not None
                parent.remove(nvpair)
        return root


class CibBuilder:
    """A CIB under construction: fragments merged section by section."""

    def __init__(self, validate_with: str, templates: Path) -> None:
        self.templates = templates
        self.cib = etree.Element(
            "cib",
            {
                "validate-with": validate_with,
                "admin_epoch": "0",
                "epoch": "1",
                "num_updates": "0",
            },
        )
        self.configuration = etree.SubElement(self.cib, "configuration")
        for section in SECTIONS:
            etree.SubElement(self.configuration, section)
        etree.SubElement(self.cib, "status")

    def section(self, name: str) -> etree._Element:
        found = self.configuration.find(name)
        assert found is not None
        return found

    def add(self, template: str, **values: object) -> etree._Element:
        fragment = Template(self.templates, template).render(**values)
        for part in fragment:
            target = self.section(part.tag)
            for child in part:
                existing = target.find(f"{child.tag}[@id='{child.get('id')}']")
                if part.tag == "crm_config" and existing is not None:
                    existing.extend(list(child))  # more properties in the same set
                else:
                    target.append(child)
        return fragment

    def primitive(self, resource_id: str) -> etree._Element:
        found = self.configuration.find(f"resources//primitive[@id='{resource_id}']")
        if found is None:
            raise RenderError([f"no primitive {resource_id} was rendered"])
        return found

    def set_property(self, name: str, value: str) -> None:
        options = self.section("crm_config").find(
            "cluster_property_set[@id='cib-bootstrap-options']"
        )
        if options is None:
            options = etree.SubElement(
                self.section("crm_config"), "cluster_property_set", id="cib-bootstrap-options"
            )
        for nvpair in options.iterfind("nvpair"):
            if nvpair.get("name") == name:
                nvpair.set("value", value)
                return
        etree.SubElement(
            options, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value
        )

    def text(self) -> str:
        for section in list(self.configuration):
            # fencing-topology may not be empty in the schema; rsc/op defaults may, but an
            # empty one says nothing
            if len(section) == 0 and section.tag in (
                "fencing-topology",
                "rsc_defaults",
                "op_defaults",
            ):
                self.configuration.remove(section)
        etree.indent(self.cib, space="  ")
        return etree.tostring(self.cib, encoding="unicode") + "\n"


def set_parameters(primitive: etree._Element, parameters: Iterable[tuple[str, str]]) -> None:
    resource_id = primitive.get("id")
    attributes = primitive.find("instance_attributes")
    if attributes is None:
        attributes = etree.SubElement(
            primitive, "instance_attributes", id=f"{resource_id}-instance_attributes"
        )
        primitive.remove(attributes)
        primitive.insert(0, attributes)
    for name, value in parameters:
        etree.SubElement(
            attributes,
            "nvpair",
            id=f"{resource_id}-instance_attributes-{name}",
            name=name,
            value=value,
        )
    if len(attributes) == 0:
        primitive.remove(attributes)


def set_operations(primitive: etree._Element, spec: AgentSpec, deep: bool) -> None:
    """The agent's advertised operations, as pcs would create them from its meta-data."""
    resource_id = primitive.get("id")
    operations = primitive.find("operations")
    assert operations is not None
    for action in spec.actions:
        if action.name not in CONFIGURED_ACTIONS:
            continue
        depth = action.depth or 0
        if action.name == "monitor" and depth >= DEEP_MONITOR and not deep:
            continue
        interval = f"{action.interval or 0}s"
        attributes = {
            "id": f"{resource_id}-{action.name}-interval-{interval}",
            "name": action.name,
            "interval": interval,
            "timeout": f"{action.timeout}s",
        }
        if action.role:
            attributes["role"] = action.role
        op = etree.SubElement(operations, "op", attributes)
        if depth:
            op_attributes = etree.SubElement(
                op, "instance_attributes", id=f"{attributes['id']}-instance_attributes"
            )
            etree.SubElement(
                op_attributes,
                "nvpair",
                id=f"{attributes['id']}-instance_attributes-OCF_CHECK_LEVEL",
                name="OCF_CHECK_LEVEL",
                value=str(depth),
            )


def _checked_parameters(
    service: str, spec: AgentSpec, given: Sequence[tuple[str, str]], defaults: Mapping[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    known = {parameter.name for parameter in spec.parameters}
    problems = [
        f"[service {service}]: {name} is not a parameter of ocf:stackha:{service} "
        f"(it has: {' '.join(sorted(known))})"
        for name, _ in given
        if name not in known
    ]
    values = dict(defaults)
    values.update(given)
    required = [p.name for p in spec.parameters if p.required and not values.get(p.name)]
    problems += [f"[service {service}]: {name} is required" for name in required]
    return list(values.items()), problems


def _stackha_service(
    cib: CibBuilder,
    site: Site,
    agent: str,
    template: str,
    defaults: Mapping[str, str],
    problems: list[str],
    **values: object,
) -> None:
    spec = agent_spec(agent)
    parameters, found = _checked_parameters(
        agent, spec, site.settings_of(agent).parameters, defaults
    )
    problems += found
    cib.add(template, **values)
    primitive = cib.primitive(agent)
    set_parameters(primitive, parameters)
    # memcached's depth-20 check needs nothing given; the API services' needs credentials
    needs_credentials = any(parameter.name == "credentials" for parameter in spec.parameters)
    deep = not needs_credentials or any(
        name == "credentials" and value for name, value in parameters
    )
    set_operations(primitive, spec, deep)


def _active_passive(cib: CibBuilder, service: Service) -> None:
    parts = service.agent.split(":")
    standard, provider, kind = (parts[0], "", parts[1]) if len(parts) == 2 else parts
    settings = {
        "start_timeout": "120s",
        "stop_timeout": "120s",
        "monitor_interval": "30s",
        "monitor_timeout": "30s",
        **dict(service.settings),
    }
    cib.add(
        "active-passive.xml",
        id=service.name,
        **{"class": standard},
        provider=provider,
        type=kind,
        **settings,
    )
    set_parameters(cib.primitive(service.name), service.parameters)


def render_cib(
    site: Site, validate_with: Optional[str] = None, templates: Optional[Path] = None
) -> str:
    """The CIB (XML text) for ``site``; RenderError lists every problem found."""
    validate_with = validate_with or installed_schema()
    if schema_version(validate_with) < OLDEST_SCHEMA:
        raise RenderError(
            [
                f"{validate_with} is too old: the templates use the roles Promoted and "
                "Unpromoted, valid from pacemaker-3.7 (Pacemaker 2.1) on"
            ]
        )
    cib = CibBuilder(validate_with, templates or template_dir())
    problems: list[str] = []
    names = site.node_names()

    cib.add("cluster-properties.xml", stonith_enabled=str(site.stonith_enabled).lower())
    for name, value in site.properties:
        cib.set_property(name, value)
    nodes = cib.section("nodes")
    for number, name in enumerate(names, start=1):
        etree.SubElement(nodes, "node", id=str(number), uname=name)
    # Fencing first in <resources>: Pacemaker runs a transition's ready actions in that order,
    # and under load it throttles them (one or two at a time per node). After a site-wide
    # outage every resource is probed and started in one transition: with the fence devices
    # last, the lab saw them still stopped two minutes later, behind the API services' starts.
    _fencing(cib, site)

    if "haproxy" in site.services:
        _stackha_service(cib, site, "haproxy", "haproxy-clone.xml", {}, problems)
    if "galera" in site.services:
        address = "gcomm://" + ",".join(names)
        _stackha_service(
            cib,
            site,
            "galera",
            "galera-clone.xml",
            {"wsrep_cluster_address": address},
            problems,
            promoted_max=len(names),
        )
    if "rabbitmq" in site.services:
        _stackha_service(cib, site, "rabbitmq", "rabbitmq-clone.xml", {}, problems)
    if "memcached" in site.services:
        _stackha_service(cib, site, "memcached", "memcached-clone.xml", {}, problems)

    apis = [s for s in api_catalog.SERVICES if s.name in site.services and site.runs(s.name)]
    database_vip = site.database_vip()
    identity = api_catalog.IDENTITY
    for service in apis:
        clone = f"{service.name}-clone"
        _stackha_service(
            cib, site, service.name, "api-clone.xml", {}, problems, service=service.name
        )
        if service.uses_database and "galera" in site.services:
            if site.database_path == "local":
                # each instance uses its own node's Galera: it needs that one promoted, and
                # stops before it is demoted (interleaved)
                _order(cib, "galera-clone", "promote", clone, "Mandatory")
            elif database_vip is not None:
                _database_path(cib, database_vip.resource_id, service.name)
        if service.uses_messaging and "rabbitmq" in site.services:
            _order(cib, "rabbitmq-clone", "start", clone, "Mandatory")
        if service.uses_cache and "memcached" in site.services:
            # its cache, on its own node's memcached: ordered at start-up only, since the
            # service works without it and a memcached restart (which empties the cache
            # anyway) must not restart it
            _order(cib, "memcached-clone", "start", clone, "Optional")
        if service.validates_tokens and identity in apis:
            # it needs keystone only to validate tokens, through the VIP: order the start, but
            # a keystone restart must not restart it
            _order(cib, f"{identity.name}-clone", "start", clone, "Optional")

    for own in site.active_passive_services():
        if own.name in site.services and own.name not in KNOWN_SERVICES:
            _active_passive(cib, own)

    for vip in site.vips:
        cib.add(
            "vip.xml",
            id=vip.resource_id,
            ip=vip.address.ip,
            prefix=vip.address.network.prefixlen,
            nic=vip.nic,
        )
        if vip.serves in ("haproxy", "database"):
            cib.add("vip-on-haproxy.xml", vip=vip.resource_id)
        elif vip.serves == "galera":
            cib.add("vip-on-galera-primary.xml", vip=vip.resource_id)
        else:
            cib.add("vip-with-service.xml", vip=vip.resource_id, service=vip.serves)

    if problems:
        raise RenderError(problems)
    return cib.text()


def _database_path(cib: CibBuilder, vip: str, service: str) -> None:
    """``service``'s clone after the database VIP and Galera's promotion, both Optional (see
    database-path.xml)."""
    cib.add("database-path.xml", vip=vip, then=f"{service}-clone")


def _order(cib: CibBuilder, first: str, action: str, then: str, kind: str) -> None:
    cib.add(
        "api-after.xml",
        first=first,
        first_action=action,
        then=then,
        kind=kind,
        kind_id=kind.lower(),
    )


def _fencing(cib: CibBuilder, site: Site) -> None:
    for node in site.nodes:
        if node.bmc:
            cib.add(
                "fence-ipmi.xml",
                node=node.name,
                ip=node.bmc.address,
                port=node.bmc.port,
                username=node.bmc.username,
                password_file=node.bmc.password_file,
            )
    for pdu in site.pdus:
        cib.add(
            "fence-pdu.xml",
            name=pdu.name,
            ip=pdu.address,
            port=pdu.port or "",
            ssh="1" if pdu.transport == "ssh" else "",
            transport=pdu.transport,
            username=pdu.username,
            password_file=pdu.password_file,
            host_map=";".join(f"{node}:{outlet}" for node, outlet in pdu.outlets),
        )
    for node in site.nodes:
        levels: list[list[str]] = []
        if node.bmc:
            levels.append([f"fence-ipmi-{node.name}"])
        pdus = [f"fence-pdu-{p.name}" for p in site.pdus if node.name in dict(p.outlets)]
        if pdus:
            levels.append(pdus)
        if len(levels) == 1 and len(levels[0]) == 1:
            continue  # one device alone needs no topology; two PDUs both must cut the power
        for index, devices in enumerate(levels, start=1):
            cib.add("fencing-level.xml", node=node.name, index=index, devices=",".join(devices))
