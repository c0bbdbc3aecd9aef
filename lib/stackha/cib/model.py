"""A CIB's configuration as typed, immutable records: the one reader of CIB structure for the
``crm_simulate`` scenarios (:mod:`stackha.cib.expectations`, :mod:`stackha.cib.simulate`) and
``stackha status`` (:mod:`stackha.openstack_status`).

A CIB says the same thing in several forms, and this module resolves them as Pacemaker does,
so that its users see one form:

- ``id-ref``: an attribute set (meta_attributes, instance_attributes, cluster_property_set),
  an nvpair, a rule or a resource set may stand for one of its kind defined elsewhere;
- a primitive made from a ``<template>`` takes its class, type and attribute sets (its own
  win);
- a tag or a template named in a constraint stands for the resources it groups;
- resource sets in location, colocation and order constraints become the pairs Pacemaker
  2.1 makes of them (:class:`Colocation`, :class:`Ordering`, one :class:`Location` per
  resource);
- roles: ``Master``/``Slave`` (accepted until Pacemaker 3.0) read as ``Promoted``/``Unpromoted``;
- promotable clones: the pre-2.0 ``<master>`` (removed in 3.0) and ``<clone>`` with
  ``promotable=true`` are one :class:`Resource` with ``promotable`` set;
- location rules are evaluated against each node's attributes where that can be done
  offline; where not (a date, a node-health score), the resource is :attr:`undecidable`.

Only the standard library's XML parser: ``stackha status`` reads the CIB through here, and
imports no lxml so as to answer at once (a test of it keeps it so).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from types import MappingProxyType

from stackha.pacemaker.values import (
    INFINITY,
    PROMOTED,
    STARTED,
    is_true,
    normal_role,
    parse_score,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from pathlib import Path
    from typing import Optional, TypeVar

    _Value = TypeVar("_Value")

# Cluster nodes proper: Corosync members ("normal" is the pre-2.0 name); not pacemaker_remote
# nodes ("remote") or quorum-only nodes ("ping").
MEMBER_TYPES = ("member", "normal")
_RESOURCE_TAGS = ("primitive", "group", "clone", "master", "bundle")


class CibError(Exception):
    """The text or file is not a CIB configuration (not XML, no ``<configuration>``)."""


# --------------------------------------------------------------------------------------------
# The records


@dataclass(frozen=True)
class Node:
    """A ``<node>`` of ``<nodes>``; ``attributes`` are its permanent node attributes."""

    id: str
    name: str
    attributes: Mapping[str, str]
    # member (a Corosync member; "normal" before 2.0), remote or ping
    type: str = "member"

    @property
    def is_member(self) -> bool:
        return self.type in MEMBER_TYPES


@dataclass(frozen=True)
class Resource:
    """A primitive, group, clone (a legacy ``<master>`` is a promotable clone) or bundle."""

    id: str
    # primitive, group, clone or bundle
    kind: str
    parent: Optional[str]
    children: tuple[str, ...]
    meta: Mapping[str, str]
    params: Mapping[str, str]
    # A primitive's class (ocf, systemd, stonith…), provider and type, its template's when
    # it has none of its own.
    standard: str = ""
    promotable: bool = False
    provider: str = ""
    type: str = ""
    template: Optional[str] = None

    @property
    def agent(self) -> str:
        """``class:provider:type`` (``class:type`` without a provider), as crm_mon names it."""
        return ":".join(part for part in (self.standard, self.provider, self.type) if part)

    @property
    def is_stonith(self) -> bool:
        return self.kind == "primitive" and self.standard == "stonith"


@dataclass(frozen=True)
class Location:
    """One location constraint applied to one resource: the score it gives each node it
    applies to (a node it does not apply to is absent)."""

    id: str
    rsc: str
    role: str
    discovery: str
    node_scores: Mapping[str, int]


@dataclass(frozen=True)
class Colocation:
    """``rsc`` (in ``rsc_role``) is placed relative to ``with_rsc`` (in ``with_role``)."""

    id: str
    rsc: str
    rsc_role: str
    with_rsc: str
    with_role: str
    score: int
    node_attribute: str = "#uname"


@dataclass(frozen=True)
class Ordering:
    """``then_action`` of ``then`` after ``first_action`` of ``first``."""

    id: str
    first: str
    first_action: str
    then: str
    then_action: str
    is_mandatory: bool


@dataclass(frozen=True)
class FencingLevel:
    """One ``fencing-level``: devices tried together, level ``index`` for ``target``."""

    target: str
    # node (a node name), pattern (target-pattern, a regular expression) or attribute
    # (target-attribute=target-value)
    target_kind: str
    index: int
    devices: tuple[str, ...]


@dataclass(frozen=True)
class Configuration:
    """What a CIB's ``<configuration>`` says, resolved (see the module's docstring)."""

    # every <node>, whatever its type
    nodes: tuple[Node, ...]
    properties: Mapping[str, str]
    resource_defaults: Mapping[str, str]
    # id → resource, in document order, a group or clone before what it holds
    resources: Mapping[str, Resource]
    locations: tuple[Location, ...]
    colocations: tuple[Colocation, ...]
    orderings: tuple[Ordering, ...]
    fencing_levels: tuple[FencingLevel, ...]
    # resource id → why the nodes it may run on cannot be told offline
    undecidable: Mapping[str, str]
    # what was read only in part, or not at all (a constraint naming nothing, a bundle…)
    notes: tuple[str, ...]

    @property
    def members(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.is_member)

    @property
    def node_names(self) -> tuple[str, ...]:
        """The cluster members' names: where resources are placed and rules evaluated."""
        return tuple(node.name for node in self.members)

    @property
    def cluster_name(self) -> Optional[str]:
        return self.properties.get("cluster-name")

    @property
    def is_stonith_enabled(self) -> bool:
        return is_true(self.properties.get("stonith-enabled", "true"))

    @property
    def stops_all_resources(self) -> bool:
        return is_true(self.properties.get("stop-all-resources", "false"))

    def ancestors(self, resource_id: str) -> Iterator[Resource]:
        """The resource itself, then its group/clone/bundle parents outwards."""
        current: Optional[str] = resource_id
        while current is not None and current in self.resources:
            resource = self.resources[current]
            yield resource
            current = resource.parent

    def clone_of(self, resource_id: str) -> Optional[Resource]:
        """The clone the resource is (in), if any."""
        for resource in self.ancestors(resource_id):
            if resource.kind == "clone":
                return resource
        return None

    def is_in_bundle(self, resource_id: str) -> bool:
        return any(r.kind == "bundle" for r in self.ancestors(resource_id))

    def meta(self, resource_id: str, name: str) -> Optional[str]:
        """A meta-attribute as Pacemaker resolves it: the resource's own, else inherited
        from its group/clone, else rsc_defaults."""
        for resource in self.ancestors(resource_id):
            if name in resource.meta:
                return resource.meta[name]
        return self.resource_defaults.get(name)

    def meta_number(self, resource_id: str, names: Sequence[str], default: int) -> int:
        """An integer meta-attribute (the first of ``names`` set), ``default`` if unset or
        not a number (Pacemaker falls back to the default too)."""
        for name in names:
            value = self.meta(resource_id, name)
            if value is not None:
                try:
                    return int(value)
                except ValueError:
                    return default
        return default

    def is_stopped_by_configuration(self, resource_id: str) -> bool:
        """target-role=Stopped on the resource or anything containing it (a clone or group
        that is stopped stops what it holds, whatever that says), or in rsc_defaults when
        none of them sets a target-role."""
        roles = [
            r.meta["target-role"] for r in self.ancestors(resource_id) if "target-role" in r.meta
        ]
        if not roles and "target-role" in self.resource_defaults:
            roles.append(self.resource_defaults["target-role"])
        return any(role.lower() == "stopped" for role in roles)

    def is_managed(self, resource_id: str) -> bool:
        if is_true(self.properties.get("maintenance-mode", "false")):
            return False
        return is_true(self.meta(resource_id, "is-managed") or "true")

    def primitives(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.kind == "primitive")

    def clones(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.kind == "clone")

    def stonith_devices(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.is_stonith)

    def allowed_nodes(self, resource_id: str) -> Optional[frozenset[str]]:
        """The members the resource may run on by its location constraints (and its group's
        and clone's), or None when a rule cannot be evaluated offline."""
        chain = list(self.ancestors(resource_id))
        if any(r.id in self.undecidable for r in chain):
            return None
        allowed = frozenset(self.node_names)
        symmetric = is_true(self.properties.get("symmetric-cluster", "true"))
        for resource in reversed(chain):
            constraints = [c for c in self.locations if c.rsc == resource.id and c.role == STARTED]
            totals: dict[str, int] = {}
            for constraint in constraints:
                for node, score in constraint.node_scores.items():
                    totals[node] = add_scores(totals.get(node, 0), score)
            if resource.parent is None and not symmetric:
                # Opt-in cluster: only nodes a constraint names, with a score of at least 0.
                allowed &= frozenset(node for node, score in totals.items() if score >= 0)
            allowed -= frozenset(node for node, score in totals.items() if score <= -INFINITY)
            exclusive = [c for c in constraints if c.discovery == "exclusive"]
            if exclusive:
                # resource-discovery=exclusive also restricts placement to the nodes those
                # constraints apply to (Pacemaker Explained, "Location Constraints").
                allowed &= frozenset(node for c in exclusive for node in c.node_scores)
        return allowed

    def promotion_bans(self, resource_id: str) -> frozenset[str]:
        """Nodes a role=Promoted -INFINITY location keeps the resource (or its clone) from
        being promoted on."""
        banned: set[str] = set()
        for resource in self.ancestors(resource_id):
            for constraint in self.locations:
                if constraint.rsc == resource.id and constraint.role == PROMOTED:
                    banned |= {n for n, s in constraint.node_scores.items() if s <= -INFINITY}
        return frozenset(banned)


# --------------------------------------------------------------------------------------------
# Pacemaker's value rules


def add_scores(left: int, right: int) -> int:
    """Pacemaker's score addition: -INFINITY wins over INFINITY."""
    if -INFINITY in (left, right):
        return -INFINITY
    if INFINITY in (left, right):
        return INFINITY
    return max(-INFINITY, min(INFINITY, left + right))


def host_list_targets(params: Mapping[str, str]) -> tuple[str, ...]:
    """The nodes of a fence device's ``pcmk_host_list``, in order; the fencer splits it on
    whitespace, commas and semicolons."""
    return _unique(re.split(r"[\s,;]+", params.get("pcmk_host_list", "")))


def host_map_targets(params: Mapping[str, str]) -> tuple[str, ...]:
    """The nodes of a fence device's ``pcmk_host_map``, in order: entries ``node:port`` or
    ``node=port`` split on whitespace and semicolons — a comma separates one node's ports
    ("n2:2,3"), as in Pacemaker's build_port_aliases()."""
    entries = re.split(r"[\s;]+", params.get("pcmk_host_map", ""))
    return _unique(re.split(r"[:=]", e, maxsplit=1)[0] for e in entries if ":" in e or "=" in e)


def fence_targets(device: Resource) -> Optional[tuple[str, ...]]:
    """The nodes a fence device fences by pcmk_host_list and pcmk_host_map, or None when
    the device is asked at run time (neither is set: dynamic-list)."""
    targets = _unique([*host_list_targets(device.params), *host_map_targets(device.params)])
    return targets or None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def _frozen(values: Mapping[str, _Value]) -> Mapping[str, _Value]:
    return MappingProxyType(dict(values))


# --------------------------------------------------------------------------------------------
# Reading


def read_cib(path: Path) -> ET.Element:
    """The ``<cib>`` element of a file; raises :class:`CibError` if it is not one."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise CibError(f"{path}: {err}") from None
    if root.tag != "cib" or root.find("configuration") is None:
        raise CibError(f"{path} is not a CIB (<cib> with a <configuration>)")
    return root


def parse_configuration(xml_text: str) -> Configuration:
    """The configuration of XML text holding a ``<cib>`` or a ``<configuration>`` (what
    ``cibadmin --query --scope configuration`` prints); raises :class:`CibError`."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise CibError(f"no XML: {err}") from None
    return read_configuration(root)


def read_configuration(root: ET.Element) -> Configuration:
    """The configuration of a ``<cib>`` or ``<configuration>`` element; raises
    :class:`CibError` for anything else."""
    configuration = root if root.tag == "configuration" else root.find("configuration")
    if configuration is None:
        raise CibError(f"no <configuration> (found <{root.tag}>)")
    # Only the configuration's ids: an id-ref never points into the status section.
    index = {
        element.get("id", ""): element for element in configuration.iter() if element.get("id")
    }

    nodes = tuple(
        Node(
            id=element.get("id", "") or element.get("uname", ""),
            name=element.get("uname", ""),
            attributes=_frozen(_first_values(element.findall("instance_attributes"), index)),
            type=element.get("type", "member"),
        )
        for element in configuration.findall("nodes/node")
    )
    properties = _first_values(configuration.findall("crm_config/cluster_property_set"), index)
    resource_defaults = _first_values(configuration.findall("rsc_defaults/meta_attributes"), index)

    resources: dict[str, Resource] = {}
    templates = {t.get("id", ""): t for t in configuration.findall("resources/template")}
    for element in _children(configuration.find("resources")):
        _read_resource(element, None, resources, templates, index)

    reader = _ConstraintReader(
        tuple(node for node in nodes if node.is_member),
        properties,
        resources,
        tuple(templates),
        index,
        configuration.find("tags"),
    )
    for element in _children(configuration.find("constraints")):
        if element.tag == "rsc_location":
            reader.location(element)
        elif element.tag == "rsc_colocation":
            reader.colocation(element)
        elif element.tag == "rsc_order":
            reader.ordering(element)

    return Configuration(
        nodes=nodes,
        properties=_frozen(properties),
        resource_defaults=_frozen(resource_defaults),
        resources=MappingProxyType(resources),
        locations=tuple(reader.locations),
        colocations=tuple(reader.colocations),
        orderings=tuple(reader.orderings),
        fencing_levels=_fencing_levels(configuration),
        undecidable=MappingProxyType(reader.undecidable),
        notes=tuple(reader.notes),
    )


def _first_values(sets: Iterable[ET.Element], index: Mapping[str, ET.Element]) -> dict[str, str]:
    """The name/value pairs of attribute sets, the first value of a name winning (Pacemaker
    orders equal-score sets as listed). Sets conditional on a rule are left out."""
    values: dict[str, str] = {}
    for attribute_set in sets:
        attribute_set = _dereference(attribute_set, index)
        if attribute_set.find("rule") is not None:
            continue
        for pair in attribute_set.findall("nvpair"):
            pair = _dereference(pair, index)
            name = pair.get("name")
            if name is not None and name not in values:
                values[name] = pair.get("value", "")
    return values


def _children(element: Optional[ET.Element]) -> list[ET.Element]:
    return list(element) if element is not None else []


def _dereference(element: ET.Element, index: Mapping[str, ET.Element]) -> ET.Element:
    reference = element.get("id-ref")
    if reference is not None and reference in index:
        return index[reference]
    return element


def _read_resource(
    element: ET.Element,
    parent: Optional[str],
    resources: dict[str, Resource],
    templates: Mapping[str, ET.Element],
    index: Mapping[str, ET.Element],
) -> None:
    tag = element.tag
    if tag not in _RESOURCE_TAGS:
        return
    resource_id = element.get("id", "")
    meta = _first_values(element.findall("meta_attributes"), index)
    if tag == "primitive":
        template_id = element.get("template")
        template = templates.get(template_id or "")
        params = {}
        if template is not None:
            params.update(_first_values(template.findall("instance_attributes"), index))
            meta = {**_first_values(template.findall("meta_attributes"), index), **meta}
        params.update(_first_values(element.findall("instance_attributes"), index))
        agent_of = template if template is not None else element
        resources[resource_id] = Resource(
            resource_id,
            "primitive",
            parent,
            (),
            _frozen(meta),
            _frozen(params),
            standard=element.get("class") or agent_of.get("class") or "",
            provider=element.get("provider") or agent_of.get("provider") or "",
            type=element.get("type") or agent_of.get("type") or "",
            template=template_id,
        )
        return
    children = tuple(child.get("id", "") for child in element if child.tag in _RESOURCE_TAGS)
    if tag == "bundle":
        kind, promotable = "bundle", False
    elif tag == "group":
        kind, promotable = "group", False
    else:
        # <master> is the pre-2.0 promotable clone (deprecated, removed in Pacemaker 3.0).
        kind, promotable = "clone", tag == "master" or is_true(meta.get("promotable"))
    resources[resource_id] = Resource(
        resource_id, kind, parent, children, _frozen(meta), _frozen({}), promotable=promotable
    )
    for child in element:
        _read_resource(child, resource_id, resources, templates, index)


def _fencing_levels(configuration: ET.Element) -> tuple[FencingLevel, ...]:
    levels = []
    for level in configuration.iterfind("fencing-topology/fencing-level"):
        if level.get("target") is not None:
            target, kind = level.get("target", ""), "node"
        elif level.get("target-pattern") is not None:
            target, kind = level.get("target-pattern", ""), "pattern"
        else:
            target = f"{level.get('target-attribute', '')}={level.get('target-value', '')}"
            kind = "attribute"
        try:
            index = int(level.get("index", ""))
        except ValueError:
            index = 0
        devices = tuple(d for d in level.get("devices", "").split(",") if d)
        levels.append(FencingLevel(target, kind, index, devices))
    return tuple(levels)


class _Undecidable(Exception):
    """A rule this module cannot evaluate offline."""


class _ConstraintReader:
    """Turns constraint elements (simple, with resource sets, tags, templates, rules) into
    the flat Location/Colocation/Ordering records."""

    def __init__(
        self,
        members: Sequence[Node],
        properties: Mapping[str, str],
        resources: Mapping[str, Resource],
        templates: Sequence[str],
        index: Mapping[str, ET.Element],
        tags: Optional[ET.Element],
    ) -> None:
        self.members = members
        self.properties = properties
        self.resources = resources
        self.index = index
        self.notes: list[str] = []
        self.locations: list[Location] = []
        self.colocations: list[Colocation] = []
        self.orderings: list[Ordering] = []
        self.undecidable: dict[str, str] = {}
        # A constraint may name a tag or a template: it applies to what they stand for.
        self.aliases: dict[str, tuple[str, ...]] = {}
        for tag in tags if tags is not None else ():
            self.aliases[tag.get("id", "")] = tuple(
                ref.get("id", "") for ref in tag.findall("obj_ref")
            )
        for template_id in templates:
            self.aliases[template_id] = tuple(
                r.id for r in resources.values() if r.template == template_id
            )

    def expand(self, reference: str, constraint_id: str) -> tuple[str, ...]:
        if reference in self.resources:
            return (reference,)
        if reference in self.aliases:
            return self.aliases[reference]
        # crm_simulate refuses such a CIB (a schema IDREF error), which the start-up scenario
        # reports; nothing to check here.
        self.notes.append(f"constraint {constraint_id} names {reference}, which is not a resource")
        return ()

    def sets(self, element: ET.Element) -> list[ET.Element]:
        return [_dereference(s, self.index) for s in element.findall("resource_set")]

    def members_of(self, resource_set: ET.Element, constraint_id: str) -> list[str]:
        return [
            resource_id
            for ref in resource_set.findall("resource_ref")
            for resource_id in self.expand(ref.get("id", ""), constraint_id)
        ]

    # locations ---------------------------------------------------------------------------

    def location(self, element: ET.Element) -> None:
        element = _dereference(element, self.index)
        constraint_id = element.get("id", "")
        targets: list[tuple[str, Optional[str]]] = []
        pattern = element.get("rsc-pattern")
        if element.get("rsc"):
            targets += [(r, None) for r in self.expand(element.get("rsc", ""), constraint_id)]
        elif pattern is not None:
            # Pacemaker matches the pattern (regexec: anywhere in the id) against top-level
            # resources only.
            try:
                regex = re.compile(pattern)
            except re.error as err:
                self.notes.append(f"location {constraint_id}: rsc-pattern {pattern!r}: {err}")
                return
            targets += [
                (r.id, None)
                for r in self.resources.values()
                if r.parent is None and regex.search(r.id)
            ]
        for resource_set in self.sets(element):
            for resource_id in self.members_of(resource_set, constraint_id):
                targets.append((resource_id, resource_set.get("role")))
        discovery = element.get("resource-discovery", "always")
        try:
            node_scores = self._location_scores(element, uses_pattern=pattern is not None)
        except _Undecidable as why:
            for resource_id, _role in targets:
                self.undecidable.setdefault(resource_id, f"location {constraint_id}: {why}")
            return
        role = element.get("role")
        rule = element.find("rule")
        if role is None and rule is not None:
            role = _dereference(rule, self.index).get("role")
        for resource_id, set_role in targets:
            self.locations.append(
                Location(
                    constraint_id,
                    resource_id,
                    normal_role(set_role or role),
                    discovery,
                    _frozen(node_scores),
                )
            )

    def _location_scores(self, element: ET.Element, uses_pattern: bool) -> dict[str, int]:
        names = {node.name for node in self.members}
        if element.get("node") is not None:
            score = parse_score(element.get("score"))
            if score is None:
                raise _Undecidable(f"score {element.get('score')} depends on node health")
            node = element.get("node", "")
            return {node: score} if node in names else {}
        scores: dict[str, int] = {}
        for rule in element.findall("rule"):
            rule = _dereference(rule, self.index)
            if rule.get("score-attribute") is not None:
                raise _Undecidable("a score-attribute rule")
            score = parse_score(rule.get("score"))
            if score is None:
                raise _Undecidable(f"score {rule.get('score')} depends on node health")
            for each in self.members:
                if self._rule_matches(rule, each, uses_pattern):
                    scores[each.name] = add_scores(scores.get(each.name, 0), score)
        return scores

    def _rule_matches(self, rule: ET.Element, node: Node, uses_pattern: bool) -> bool:
        results = []
        for child in rule:
            child = _dereference(child, self.index)
            if child.tag == "expression":
                results.append(self._expression_matches(child, node, uses_pattern))
            elif child.tag == "rule":
                results.append(self._rule_matches(child, node, uses_pattern))
            else:
                raise _Undecidable(f"a <{child.tag}> in rule {rule.get('id')}")
        if not results:
            return True
        if rule.get("boolean-op", "and").lower() == "or":
            return any(results)
        return all(results)

    def _expression_matches(self, expression: ET.Element, node: Node, uses_pattern: bool) -> bool:
        if expression.get("value-source", "literal") != "literal":
            raise _Undecidable(f"expression {expression.get('id')} reads a resource parameter")
        expected = expression.get("value")
        if uses_pattern and expected is not None and "%" in expected:
            raise _Undecidable("a rsc-pattern submatch in a rule")
        attributes = {
            **node.attributes,
            "#uname": node.name,
            "#id": node.id,
            "#kind": "cluster",
        }
        if "cluster-name" in self.properties:
            attributes["#cluster-name"] = self.properties["cluster-name"]
        name = expression.get("attribute", "")
        if name.startswith("#") and name not in attributes:
            raise _Undecidable(f"expression {expression.get('id')} reads {name}")
        actual = attributes.get(name)
        operation = expression.get("operation", "")
        if operation == "defined":
            return actual is not None
        if operation == "not_defined":
            return actual is None
        if actual is None or expected is None:
            return False
        kind = expression.get("type")
        if kind is None:
            # Pacemaker 2.1: numbers for lt/gt/lte/gte, strings for the rest.
            kind = "number" if operation in ("lt", "gt", "lte", "gte") else "string"
        comparison = _compare(actual, expected, kind)
        if comparison is None:
            return False
        outcomes = {
            "eq": comparison == 0,
            "ne": comparison != 0,
            "lt": comparison < 0,
            "gt": comparison > 0,
            "lte": comparison <= 0,
            "gte": comparison >= 0,
        }
        if operation not in outcomes:
            raise _Undecidable(f"operation {operation} in expression {expression.get('id')}")
        return outcomes[operation]

    # colocations -------------------------------------------------------------------------

    def colocation(self, element: ET.Element) -> None:
        constraint_id = element.get("id", "")
        score = parse_score(element.get("score"))
        if score is None:
            self.notes.append(f"colocation {constraint_id}: node-health score, not checked")
            return
        sets = self.sets(element)
        if not sets:
            for rsc in self.expand(element.get("rsc", ""), constraint_id):
                for with_rsc in self.expand(element.get("with-rsc", ""), constraint_id):
                    self._add_colocation(
                        constraint_id,
                        rsc,
                        element.get("rsc-role"),
                        with_rsc,
                        element.get("with-rsc-role"),
                        score,
                        element.get("node-attribute", "#uname"),
                    )
            return
        # The semantics of Pacemaker 2.1's pcmk__unpack_colocation(): inside a sequential
        # set each member is placed with the one before it ("listed" ordering: the other way
        # round); between sets, the first of the earlier set with the last of the later one
        # (every member of a non-sequential set).
        for position, resource_set in enumerate(sets):
            members = self.members_of(resource_set, constraint_id)
            role = resource_set.get("role")
            set_score = (
                parse_score(resource_set.get("score")) if resource_set.get("score") else score
            )
            if set_score is None or not is_true(resource_set.get("sequential", "true")):
                pass
            elif set_score > 0 and resource_set.get("ordering", "group") == "group":
                for before, member in zip(members, members[1:]):
                    self._add_colocation(constraint_id, member, role, before, role, set_score)
            elif set_score > 0:
                for before, member in zip(members, members[1:]):
                    self._add_colocation(constraint_id, before, role, member, role, set_score)
            if position == 0:
                continue
            earlier = sets[position - 1]
            dependents = self.members_of(earlier, constraint_id)
            if is_true(earlier.get("sequential", "true")):
                dependents = dependents[:1]
            anchors = members
            if is_true(resource_set.get("sequential", "true")):
                anchors = members[-1:]
            for dependent in dependents:
                for anchor in anchors:
                    self._add_colocation(
                        constraint_id, dependent, earlier.get("role"), anchor, role, score
                    )

    def _add_colocation(
        self,
        constraint_id: str,
        rsc: str,
        rsc_role: Optional[str],
        with_rsc: str,
        with_role: Optional[str],
        score: int,
        node_attribute: str = "#uname",
    ) -> None:
        self.colocations.append(
            Colocation(
                constraint_id,
                rsc,
                normal_role(rsc_role),
                with_rsc,
                normal_role(with_role),
                score,
                node_attribute,
            )
        )

    # orderings ---------------------------------------------------------------------------

    def ordering(self, element: ET.Element) -> None:
        constraint_id = element.get("id", "")
        kind = element.get("kind")
        if kind is not None:
            is_mandatory = kind.lower() == "mandatory"
        else:
            # Before "kind" there was a score: 0 = optional, anything else (or none) mandatory.
            score = element.get("score")
            is_mandatory = score is None or parse_score(score) != 0
        sets = self.sets(element)
        if not sets:
            first_action = element.get("first-action", "start")
            # then-action defaults to first-action (Pacemaker Explained, "Ordering").
            then_action = element.get("then-action", first_action)
            for first in self.expand(element.get("first", ""), constraint_id):
                for then in self.expand(element.get("then", ""), constraint_id):
                    self.orderings.append(
                        Ordering(
                            constraint_id, first, first_action, then, then_action, is_mandatory
                        )
                    )
            return
        # Pacemaker 2.1's unpack_order_set()/order_rsc_sets(): members of a sequential set in
        # turn; between sets, the last of a sequential earlier set (every member otherwise)
        # before the first of a sequential later set (every member otherwise).
        for position, resource_set in enumerate(sets):
            members = self.members_of(resource_set, constraint_id)
            action = resource_set.get("action", "start")
            if is_true(resource_set.get("sequential", "true")):
                for before, member in zip(members, members[1:]):
                    self.orderings.append(
                        Ordering(constraint_id, before, action, member, action, is_mandatory)
                    )
            if position == 0:
                continue
            earlier = sets[position - 1]
            if not is_true(earlier.get("require-all", "true")):
                self.notes.append(
                    f"order {constraint_id}: a set with require-all=false (any one of it "
                    "suffices), not checked"
                )
                continue
            firsts = self.members_of(earlier, constraint_id)
            if is_true(earlier.get("sequential", "true")):
                firsts = firsts[-1:]
            thens = members[:1] if is_true(resource_set.get("sequential", "true")) else members
            for first in firsts:
                for then in thens:
                    self.orderings.append(
                        Ordering(
                            constraint_id,
                            first,
                            earlier.get("action", "start"),
                            then,
                            action,
                            is_mandatory,
                        )
                    )


def _compare(actual: str, expected: str, kind: str) -> Optional[int]:
    if kind in ("number", "integer"):
        try:
            left, right = float(actual), float(expected)
        except ValueError:
            return None
        return (left > right) - (left < right)
    if kind == "version":
        raise _Undecidable("a version comparison")
    # Pacemaker compares strings case-insensitively.
    left_text, right_text = actual.lower(), expected.lower()
    return (left_text > right_text) - (left_text < right_text)
