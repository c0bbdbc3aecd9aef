"""``crm_simulate`` scenarios that assert the placement a CIB promises.

A CIB can be valid, pass ``crm_verify``, and still not do what it says: the OpenStack HA
Guide's ``<rsc_colocation rsc="haproxy-clone" with-rsc="vip-public" score="INFINITY"/>``
(the clone colocated with the VIP instead of the VIP with the clone) pins HAProxy to the one
node holding the VIP, and nothing complains. So the CIB is run through scenarios offline —

- **start-up**: every node of ``<nodes>`` comes up, with the promotion score each promotable
  clone's agent would set (``master-<primitive>`` = 100 on every node);
- **<node> lost**, for each node in turn, from the started state: the node fails, Pacemaker
  fences it (simulated as successful) and recovers on the survivors —

each simulated transition after transition until nothing is left to do, and the placement is
checked against expectations derived from the configuration itself (no fixed ids):

a. a clone runs an instance on every online node it is allowed on (``clone-max`` instances
   when that is fewer);
b. a promotable clone is Promoted on every node it runs on when ``promoted-max`` allows, else
   on exactly ``promoted-max`` nodes;
c. a resource colocated INFINITY with another runs only where the other runs (in the role the
   constraint names);
d. a resource after a mandatory ordering runs only where (interleaved clones) or when (the
   rest) the "first" resource has reached the state the first action implies;
e. no fence device runs on a node it fences;
f. every resource not stopped by configuration is active somewhere an allowed node is online;

plus, in every node-lost scenario, that the lost node was fenced when ``stonith-enabled``.
Where the configuration uses something these checks cannot evaluate offline (a rule on a
date, a bundle), the check is skipped for that resource and a note says so.

The expectations are pure functions over the configuration and a placement (unit-testable
without Pacemaker); only :func:`simulate` runs a program.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

from stackha.clock import SystemClock
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from typing import Optional

    from stackha.clock import Clock
    from stackha.runner import Result, Runner

CRM_SIMULATE = "/usr/sbin/crm_simulate"
TOOL_TIMEOUT_S = 60.0
# A stable CIB settles in two rounds (one transition, then an empty one); a scenario still
# moving after this many is reported as not settling (a resource flapping between nodes).
MAX_ROUNDS = 10
# What our agents set with crm_attribute --promotion once an instance may be promoted; any
# positive value lets Pacemaker promote.
PROMOTION_SCORE = "100"

INFINITY = 1_000_000
PROMOTED = "Promoted"
UNPROMOTED = "Unpromoted"
STARTED = "Started"
STOPPED = "Stopped"
# Pacemaker 2.1 still accepts the pre-2.1 role names (schema >= 3.7 has both).
_ROLE_ALIASES = {"Master": PROMOTED, "Slave": UNPROMOTED}


class CibError(Exception):
    """The file is not a CIB that can be simulated (not XML, no <configuration>)."""


class SimulationFailed(CommandError):
    """crm_simulate refused the input (an invalid CIB) or failed."""


# --------------------------------------------------------------------------------------------
# The configuration, read once


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    attributes: Mapping[str, str]


@dataclass(frozen=True)
class Resource:
    """A primitive, group, clone (a legacy ``<master>`` is a promotable clone) or bundle."""

    id: str
    kind: str
    parent: Optional[str]
    children: tuple[str, ...]
    meta: Mapping[str, str]
    params: Mapping[str, str]
    standard: str = ""  # a primitive's class: ocf, systemd, stonith…
    promotable: bool = False


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
    id: str
    first: str
    first_action: str
    then: str
    then_action: str
    is_mandatory: bool


@dataclass(frozen=True)
class Configuration:
    nodes: tuple[Node, ...]
    properties: Mapping[str, str]
    resource_defaults: Mapping[str, str]
    resources: Mapping[str, Resource]
    locations: tuple[Location, ...]
    colocations: tuple[Colocation, ...]
    orderings: tuple[Ordering, ...]
    # resource id → why the nodes it may run on cannot be told offline
    undecidable: Mapping[str, str]
    notes: tuple[str, ...]

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes)

    @property
    def is_stonith_enabled(self) -> bool:
        return is_true(self.properties.get("stonith-enabled", "true"))

    def ancestors(self, resource_id: str) -> Iterator[Resource]:
        """The resource itself, then its group/clone parents outwards."""
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

    def meta(self, resource_id: str, name: str) -> Optional[str]:
        """A meta-attribute as Pacemaker resolves it: the resource's own, else inherited
        from its group/clone, else rsc_defaults."""
        for resource in self.ancestors(resource_id):
            if name in resource.meta:
                return resource.meta[name]
        return self.resource_defaults.get(name)

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

    def is_managed(self, resource_id: str) -> bool:
        if is_true(self.properties.get("maintenance-mode", "false")):
            return False
        return is_true(self.meta(resource_id, "is-managed") or "true")

    def primitives(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.kind == "primitive")

    def clones(self) -> Iterator[Resource]:
        return (r for r in self.resources.values() if r.kind == "clone")


def is_true(value: Optional[str]) -> bool:
    """Pacemaker's crm_is_true."""
    return value is not None and value.lower() in ("true", "on", "yes", "y", "1")


def parse_score(text: Optional[str]) -> Optional[int]:
    """Pacemaker's char2score; None for what cannot be told offline (node-health colors)."""
    if text is None:
        return 0
    value = text.strip().lower()
    if value in ("infinity", "+infinity"):
        return INFINITY
    if value == "-infinity":
        return -INFINITY
    try:
        return max(-INFINITY, min(INFINITY, int(value)))
    except ValueError:
        return None


def add_scores(left: int, right: int) -> int:
    """Pacemaker's score addition: -INFINITY wins over INFINITY."""
    if -INFINITY in (left, right):
        return -INFINITY
    if INFINITY in (left, right):
        return INFINITY
    return max(-INFINITY, min(INFINITY, left + right))


def normal_role(role: Optional[str]) -> str:
    if not role:
        return STARTED
    return _ROLE_ALIASES.get(role, role)


class _Undecidable(Exception):
    """A rule this module cannot evaluate offline."""


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


def read_cib(path: Path) -> ET.Element:
    """The ``<cib>`` element of a file; raises :class:`CibError` if it is not one."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise CibError(f"{path}: {err}") from None
    if root.tag != "cib" or root.find("configuration") is None:
        raise CibError(f"{path} is not a CIB (<cib> with a <configuration>)")
    return root


def read_configuration(cib: ET.Element) -> Configuration:
    """The parts of a CIB's configuration the expectations are derived from."""
    configuration = cib.find("configuration")
    if configuration is None:
        raise CibError("the CIB has no <configuration>")
    index = {element.get("id", ""): element for element in cib.iter() if element.get("id")}
    notes: list[str] = []

    nodes = tuple(
        Node(
            id=element.get("id", "") or element.get("uname", ""),
            name=element.get("uname", ""),
            attributes=_first_values(element.findall("instance_attributes"), index),
        )
        for element in configuration.findall("nodes/node")
        if element.get("type", "member") in ("member", "normal")
    )
    properties = _first_values(configuration.findall("crm_config/cluster_property_set"), index)
    resource_defaults = _first_values(configuration.findall("rsc_defaults/meta_attributes"), index)

    resources: dict[str, Resource] = {}
    templates = {t.get("id", ""): t for t in configuration.findall("resources/template")}
    for element in _children(configuration.find("resources")):
        _read_resource(element, None, resources, templates, index, notes)

    reader = _ConstraintReader(
        nodes, properties, resources, templates, index, configuration.find("tags"), notes
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
        properties=properties,
        resource_defaults=resource_defaults,
        resources=resources,
        locations=tuple(reader.locations),
        colocations=tuple(reader.colocations),
        orderings=tuple(reader.orderings),
        undecidable=reader.undecidable,
        notes=tuple(notes),
    )


def _read_resource(
    element: ET.Element,
    parent: Optional[str],
    resources: dict[str, Resource],
    templates: Mapping[str, ET.Element],
    index: Mapping[str, ET.Element],
    notes: list[str],
) -> None:
    tag = element.tag
    if tag not in ("primitive", "group", "clone", "master", "bundle"):
        return
    resource_id = element.get("id", "")
    meta = _first_values(element.findall("meta_attributes"), index)
    if tag == "primitive":
        template = templates.get(element.get("template", ""))
        params = {}
        if template is not None:
            params.update(_first_values(template.findall("instance_attributes"), index))
            meta = {**_first_values(template.findall("meta_attributes"), index), **meta}
        params.update(_first_values(element.findall("instance_attributes"), index))
        standard = element.get("class", "")
        if not standard and template is not None:
            standard = template.get("class", "")
        resources[resource_id] = Resource(
            resource_id, "primitive", parent, (), meta, params, standard=standard
        )
        return
    children = tuple(
        child.get("id", "")
        for child in element
        if child.tag in ("primitive", "group", "clone", "master")
    )
    if tag == "bundle":
        notes.append(f"bundle {resource_id}: not checked (only primitives, groups and clones)")
        resources[resource_id] = Resource(resource_id, "bundle", parent, (), meta, {})
        return
    if tag == "group":
        resources[resource_id] = Resource(resource_id, "group", parent, children, meta, {})
    else:
        # <master> is the pre-2.0 promotable clone (deprecated, removed in Pacemaker 3.0).
        promotable = tag == "master" or is_true(meta.get("promotable"))
        resources[resource_id] = Resource(
            resource_id, "clone", parent, children, meta, {}, promotable=promotable
        )
    for child in element:
        _read_resource(child, resource_id, resources, templates, index, notes)


class _ConstraintReader:
    """Turns constraint elements (simple, with resource sets, tags, templates, rules) into
    the flat Location/Colocation/Ordering records the checks use."""

    def __init__(
        self,
        nodes: Sequence[Node],
        properties: Mapping[str, str],
        resources: Mapping[str, Resource],
        templates: Mapping[str, ET.Element],
        index: Mapping[str, ET.Element],
        tags: Optional[ET.Element],
        notes: list[str],
    ) -> None:
        self.nodes = nodes
        self.properties = properties
        self.resources = resources
        self.index = index
        self.notes = notes
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
                r.id
                for r in resources.values()
                if r.kind == "primitive"
                and index.get(r.id) is not None
                and index[r.id].get("template") == template_id
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
        for resource_set in element.findall("resource_set"):
            resource_set = _dereference(resource_set, self.index)
            for ref in resource_set.findall("resource_ref"):
                for resource_id in self.expand(ref.get("id", ""), constraint_id):
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
                    node_scores,
                )
            )

    def _location_scores(self, element: ET.Element, uses_pattern: bool) -> dict[str, int]:
        names = {node.name for node in self.nodes}
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
            for each in self.nodes:
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
        sets = [_dereference(s, self.index) for s in element.findall("resource_set")]
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
            members = self._members(resource_set, constraint_id)
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
            dependents = self._members(earlier, constraint_id)
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

    def _members(self, resource_set: ET.Element, constraint_id: str) -> list[str]:
        return [
            resource_id
            for ref in resource_set.findall("resource_ref")
            for resource_id in self.expand(ref.get("id", ""), constraint_id)
        ]

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
        sets = [_dereference(s, self.index) for s in element.findall("resource_set")]
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
            members = self._members(resource_set, constraint_id)
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
            firsts = self._members(earlier, constraint_id)
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


# --------------------------------------------------------------------------------------------
# What the configuration allows, derived without Pacemaker


def allowed_nodes(configuration: Configuration, resource_id: str) -> Optional[frozenset[str]]:
    """The nodes the resource may run on by its location constraints (and its group's and
    clone's), or None when a rule cannot be evaluated offline."""
    chain = list(configuration.ancestors(resource_id))
    if any(r.id in configuration.undecidable for r in chain):
        return None
    allowed = frozenset(configuration.node_names)
    symmetric = is_true(configuration.properties.get("symmetric-cluster", "true"))
    for resource in reversed(chain):
        constraints = [
            c for c in configuration.locations if c.rsc == resource.id and c.role == STARTED
        ]
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


def promotion_bans(configuration: Configuration, clone_id: str) -> frozenset[str]:
    """Nodes a role=Promoted -INFINITY location keeps the clone from being promoted on."""
    banned: set[str] = set()
    for resource in configuration.ancestors(clone_id):
        for constraint in configuration.locations:
            if constraint.rsc == resource.id and constraint.role == PROMOTED:
                banned |= {n for n, s in constraint.node_scores.items() if s <= -INFINITY}
    return frozenset(banned)


def fence_targets(device: Resource) -> Optional[frozenset[str]]:
    """The nodes a fence device fences by pcmk_host_list / pcmk_host_map, or None when the
    device is asked at run time (dynamic-list)."""
    targets: set[str] = set()
    # The fencer splits both lists on whitespace, commas and semicolons; a map entry is
    # node:port or node=port (ports of one node may be comma-separated: "n2:2,3").
    host_list = device.params.get("pcmk_host_list", "")
    targets |= {name for name in re.split(r"[\s,;]+", host_list) if name}
    host_map = device.params.get("pcmk_host_map", "")
    for entry in re.split(r"[\s;]+", host_map):
        if ":" in entry or "=" in entry:
            targets.add(re.split(r"[:=]", entry, maxsplit=1)[0])
    return frozenset(targets) if targets else None


def promotion_attributes(configuration: Configuration) -> tuple[str, ...]:
    """The node attributes promotable clones' agents set (``crm_attribute --promotion``
    writes ``master-<primitive id>``): one per primitive inside a promotable clone."""
    names = []
    for resource in configuration.primitives():
        clone = configuration.clone_of(resource.id)
        if clone is not None and clone.promotable:
            names.append(f"master-{resource.id}")
    return tuple(names)


# --------------------------------------------------------------------------------------------
# One crm_simulate run, read


@dataclass(frozen=True)
class SimulationRound:
    """What one crm_simulate --simulate reported."""

    transition: tuple[str, ...]  # the actions it executed (no pseudo-actions), readable
    fenced: tuple[str, ...]  # nodes it fenced
    online_nodes: tuple[str, ...]  # online, not standby, not in maintenance
    placement: Mapping[str, Mapping[str, str]]  # primitive id → node → role, afterwards


_ROLE_RANK = {STOPPED: 0, STARTED: 1, UNPROMOTED: 1, PROMOTED: 2}


def parse_simulation(xml_text: str) -> SimulationRound:
    """Parse ``crm_simulate --simulate --output-as=xml`` (Pacemaker 2.1 output API 2.25)."""
    root = ET.fromstring(xml_text)
    # Pseudo-actions change nothing, and Pacemaker 2.1.5 schedules a clone's start/running
    # pseudo-actions again in every transition while one of its instances is blocked: they
    # are left out, so such a cluster counts as settled.
    transition = tuple(
        " ".join([action.tag, *(f"{k}={v}" for k, v in action.attrib.items())])
        for action in _children(root.find("transition"))
        if action.tag != "pseudo_action"
    )
    fenced = tuple(
        action.get("target", "")
        for action in _children(root.find("transition"))
        if action.tag == "fencing_action"
    )
    # Placement read from the status before the transition would judge the wrong cluster.
    status = root.find("revised_cluster_status")
    if status is None:
        raise SimulationFailed("crm_simulate printed no revised cluster status")
    online: list[str] = []
    placement: dict[str, dict[str, str]] = {}
    if status is not None:
        online = [
            node.get("name", "")
            for node in status.iterfind("nodes/node")
            if is_true(node.get("online"))
            and not is_true(node.get("standby"))
            and not is_true(node.get("maintenance"))
        ]
        for resource in status.iter("resource"):
            if is_true(resource.get("orphaned")):
                continue
            # Instances of an anonymous clone carry the primitive's id, a unique clone's
            # "id:N".
            resource_id = resource.get("id", "").split(":", 1)[0]
            role = normal_role(resource.get("role"))
            on_nodes = placement.setdefault(resource_id, {})
            for node in resource.iterfind("node"):
                name = node.get("name", "")
                if _ROLE_RANK.get(role, 1) > _ROLE_RANK.get(on_nodes.get(name, STOPPED), 1):
                    on_nodes[name] = role
    return SimulationRound(transition, fenced, tuple(online), placement)


def complete_placement(
    configuration: Configuration, primitives: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """The placement of every configured resource: a primitive's from the simulation, a
    group where any member runs (Promoted where all its members are), a clone its child's."""
    placement: dict[str, dict[str, str]] = {}

    def place(resource_id: str) -> dict[str, str]:
        if resource_id in placement:
            return placement[resource_id]
        resource = configuration.resources[resource_id]
        result: dict[str, str] = {}
        if resource.kind == "primitive":
            result = dict(primitives.get(resource_id, {}))
        elif resource.kind == "group":
            members = [place(child) for child in resource.children]
            for node in sorted({node for member in members for node in member}):
                roles = [member.get(node, STOPPED) for member in members]
                result[node] = PROMOTED if all(r == PROMOTED for r in roles) else STARTED
        elif resource.kind == "clone" and resource.children:
            result = dict(place(resource.children[0]))
        placement[resource_id] = result
        return result

    for resource_id in configuration.resources:
        place(resource_id)
    return placement


# --------------------------------------------------------------------------------------------
# The expectations


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _nodes_text(nodes: Iterable[str]) -> str:
    return " ".join(sorted(nodes))


def _where(nodes: Iterable[str]) -> str:
    """Nodes as a phrase: "node1 only", "node1 node2", "no node"."""
    names = sorted(nodes)
    if not names:
        return "no node"
    if len(names) == 1:
        return f"{names[0]} only"
    return " ".join(names)


def _is_in_role(role: Optional[str], wanted: str) -> bool:
    if role is None or role == STOPPED:
        return False
    if wanted == STARTED:
        return True
    return role == wanted


def _nodes_in_role(placement: Mapping[str, Mapping[str, str]], rid: str, role: str) -> set[str]:
    return {node for node, r in placement.get(rid, {}).items() if _is_in_role(r, role)}


def _state_for_action(action: str) -> Optional[str]:
    """The state "first" is in once the ordering's first action is done."""
    return {"start": STARTED, "promote": PROMOTED}.get(action)


def _is(role: str) -> str:
    """The verb for being in a role: "runs" (any active role), "is Promoted"…"""
    return "runs" if role == STARTED else f"is {role}"


def _is_not(role: str) -> str:
    return "does not run" if role == STARTED else f"is not {role}"


def _role_phrase(resource_id: str, role: str) -> str:
    return resource_id if role == STARTED else f"{role} {resource_id}"


def _is_interleaved(configuration: Configuration, ordering: Ordering) -> bool:
    """Per-node ordering: both sides are clones and the "then" clone says interleave (it is
    read from "then" for start/promote, Pacemaker 2.1 can_interleave_actions())."""
    first = configuration.resources.get(ordering.first)
    then = configuration.resources.get(ordering.then)
    return (
        first is not None
        and then is not None
        and first.kind == "clone"
        and then.kind == "clone"
        and is_true(configuration.meta(then.id, "interleave"))
    )


def _checked_orderings(configuration: Configuration) -> Iterator[tuple[Ordering, str, str]]:
    """Mandatory start/promote orderings with the state "first" must be in and the role the
    "then" instances it constrains are in."""
    for ordering in configuration.orderings:
        first_state = _state_for_action(ordering.first_action)
        then_state = _state_for_action(ordering.then_action)
        if ordering.is_mandatory and first_state is not None and then_state is not None:
            yield ordering, first_state, then_state


def _absence_causes(
    configuration: Configuration,
    placement: Mapping[str, Mapping[str, str]],
    unit: str,
    missing: set[str],
) -> list[str]:
    """Why ``unit`` may be missing from ``missing``: its INFINITY colocations and mandatory
    orderings whose other side is not there (in the role they need)."""
    # A group member is held back by its group's constraints as much as by its own.
    held = {resource.id for resource in configuration.ancestors(unit)}
    causes = []
    for colocation in configuration.colocations:
        if colocation.rsc not in held or colocation.score < INFINITY:
            continue
        there = _nodes_in_role(placement, colocation.with_rsc, colocation.with_role)
        if missing - there:
            causes.append(
                f"it is colocated INFINITY with "
                f"{_role_phrase(colocation.with_rsc, colocation.with_role)} ({colocation.id}), "
                f"which {_is(colocation.with_role)} on {_where(there)}"
            )
    for ordering, first_state, _then_state in _checked_orderings(configuration):
        if ordering.then not in held:
            continue
        there = _nodes_in_role(placement, ordering.first, first_state)
        lacking = missing - there if _is_interleaved(configuration, ordering) else not there
        if lacking:
            causes.append(
                f"it is ordered after {ordering.first_action} {ordering.first} ({ordering.id}),"
                f" which {_is(first_state)} on {_where(there)}"
            )
    return causes


def _with_causes(problem: str, causes: Sequence[str]) -> str:
    return f"{problem}: {'; '.join(causes)}" if causes else problem


def check_placement(
    configuration: Configuration,
    primitives: Mapping[str, Mapping[str, str]],
    online_nodes: Iterable[str],
    scenario: str,
) -> Findings:
    """Every expectation (a–f, see the module docstring) the placement of the primitives
    (id → node → role) violates with ``online_nodes`` up, one readable line each."""
    findings = Findings()
    online = set(online_nodes)
    placement = complete_placement(configuration, primitives)
    if is_true(configuration.properties.get("stop-all-resources", "false")):
        findings.note("stop-all-resources is set: nothing is expected to run")
        return findings

    def is_expected_to_run(resource_id: str) -> bool:
        if configuration.is_stopped_by_configuration(resource_id):
            return False
        if not configuration.is_managed(resource_id):
            findings.note(f"{resource_id} is not managed: where it runs is not checked")
            return False
        return True

    clones_checked: set[str] = set()
    # a. every online allowed node has an instance
    for clone in configuration.clones():
        if not is_expected_to_run(clone.id):
            continue
        if (
            is_true(configuration.meta(clone.id, "globally-unique"))
            or configuration.meta_number(clone.id, ("clone-node-max",), 1) > 1
        ):
            findings.note(f"{clone.id} is a unique clone or several per node: count not checked")
            continue
        allowed = allowed_nodes(configuration, clone.id)
        if allowed is None:
            findings.note(
                f"{clone.id}: where it may run cannot be told offline "
                f"({configuration.undecidable.get(clone.id) or 'a rule on a group or clone'})"
            )
            continue
        if any(c.rsc == clone.id and c.score <= -INFINITY for c in configuration.colocations):
            findings.note(f"{clone.id} is anti-colocated: instance count not checked")
            continue
        clones_checked.add(clone.id)
        expected = online & allowed
        running = _nodes_in_role(placement, clone.id, STARTED)
        everywhere = (
            "every online node" if expected == online else "every online node it is allowed on"
        )
        clone_max = configuration.meta_number(clone.id, ("clone-max",), 0)
        if 0 < clone_max < len(expected):
            if len(running & expected) != clone_max:
                findings.problems.append(
                    _with_causes(
                        f"{scenario}: {clone.id} runs on {_where(running)}, expected on "
                        f"{clone_max} (clone-max) of {_nodes_text(expected)}",
                        _absence_causes(configuration, placement, clone.id, expected - running),
                    )
                )
        elif expected - running:
            findings.problems.append(
                _with_causes(
                    f"{scenario}: {clone.id} runs on {_where(running)}, expected on "
                    f"{everywhere} ({_nodes_text(expected)})",
                    _absence_causes(configuration, placement, clone.id, expected - running),
                )
            )

    # b. promotable clones promoted as far as promoted-max allows
    for clone in configuration.clones():
        if not clone.promotable or not is_expected_to_run(clone.id):
            continue
        running = _nodes_in_role(placement, clone.id, STARTED)
        candidates = running - promotion_bans(configuration, clone.id)
        promoted = _nodes_in_role(placement, clone.id, PROMOTED)
        target_role = normal_role(configuration.meta(clone.id, "target-role"))
        # master-max is promoted-max's pre-2.0 name, still read by Pacemaker 2.1.
        promoted_max = configuration.meta_number(clone.id, ("promoted-max", "master-max"), 1)
        if target_role == UNPROMOTED:
            promoted_max = 0
        if promoted_max >= len(candidates) and candidates - promoted:
            findings.problems.append(
                _with_causes(
                    f"{scenario}: {clone.id} is Promoted on {_where(promoted)}, expected "
                    f"Promoted on every node it runs on ({_nodes_text(candidates)}), "
                    f"promoted-max={promoted_max}",
                    _absence_causes(configuration, placement, clone.id, candidates - promoted),
                )
            )
        elif promoted_max < len(candidates) and len(promoted) != promoted_max:
            findings.problems.append(
                f"{scenario}: {clone.id} is Promoted on {_where(promoted)}, expected on exactly "
                f"{promoted_max} of {_nodes_text(candidates)} (promoted-max={promoted_max})"
            )

    # c. INFINITY colocations
    for colocation in configuration.colocations:
        if colocation.score < INFINITY:
            continue
        if colocation.node_attribute != "#uname":
            findings.note(
                f"colocation {colocation.id} is by node attribute "
                f"{colocation.node_attribute}: not checked"
            )
            continue
        if STOPPED in (colocation.rsc_role, colocation.with_role):
            findings.note(f"colocation {colocation.id} names the Stopped role: not checked")
            continue
        dependent = _nodes_in_role(placement, colocation.rsc, colocation.rsc_role)
        there = _nodes_in_role(placement, colocation.with_rsc, colocation.with_role)
        stray = dependent - there
        if stray:
            findings.problems.append(
                f"{scenario}: {colocation.rsc} {_is(colocation.rsc_role)} on "
                f"{_nodes_text(stray)}, where {colocation.with_rsc} "
                f"{_is_not(colocation.with_role)} (colocation {colocation.id}: "
                f"{_role_phrase(colocation.rsc, colocation.rsc_role)} with "
                f"{_role_phrase(colocation.with_rsc, colocation.with_role)}, INFINITY)"
            )

    # d. mandatory orderings
    for ordering, first_state, then_state in _checked_orderings(configuration):
        then_nodes = _nodes_in_role(placement, ordering.then, then_state)
        first_nodes = _nodes_in_role(placement, ordering.first, first_state)
        summary = (
            f"order {ordering.id}: {ordering.first_action} {ordering.first} then "
            f"{ordering.then_action} {ordering.then}"
        )
        if _is_interleaved(configuration, ordering):
            early = then_nodes - first_nodes
            if early:
                findings.problems.append(
                    f"{scenario}: {ordering.then} {_is(then_state)} on {_nodes_text(early)}, "
                    f"where {ordering.first} {_is_not(first_state)} ({summary}, interleaved)"
                )
        elif then_nodes and not first_nodes:
            findings.problems.append(
                f"{scenario}: {ordering.then} {_is(then_state)} on {_nodes_text(then_nodes)} "
                f"while {ordering.first} {_is(first_state)} on no node ({summary})"
            )

    # e. no fence device on a node it fences
    for device in configuration.primitives():
        if device.standard != "stonith":
            continue
        targets = fence_targets(device)
        if targets is None:
            findings.note(
                f"{device.id} has no pcmk_host_list or pcmk_host_map: which nodes it fences "
                "is asked at run time, not checked"
            )
            continue
        if set(configuration.node_names) <= targets:
            findings.note(f"{device.id} fences every node: where it runs is not checked")
            continue
        on_target = _nodes_in_role(placement, device.id, STARTED) & targets
        for node in sorted(on_target):
            findings.problems.append(f"{scenario}: {device.id} runs on {node}, the node it fences")

    # f. everything expected to run is active somewhere
    # (a primitive in a clone is checked as the clone, once)
    units: dict[str, None] = {}
    for primitive in configuration.primitives():
        enclosing = configuration.clone_of(primitive.id)
        units[enclosing.id if enclosing is not None else primitive.id] = None
    for unit in units:
        if unit in clones_checked or not is_expected_to_run(unit):
            continue
        allowed = allowed_nodes(configuration, unit)
        if allowed is None:
            findings.note(
                f"{unit}: where it may run cannot be told offline "
                f"({configuration.undecidable.get(unit) or 'a rule on its group or clone'})"
            )
            continue
        candidates = online & allowed
        if candidates and not _nodes_in_role(placement, unit, STARTED):
            findings.problems.append(
                _with_causes(
                    f"{scenario}: {unit} is active on no node, expected on one of "
                    f"{_nodes_text(candidates)}",
                    _absence_causes(configuration, placement, unit, candidates),
                )
            )
    return findings


def check_configuration(configuration: Configuration) -> Findings:
    """What the configuration itself promises badly, before any simulation: a fence device
    allowed on a node it fences (it would then be monitored, and have to fence, from the
    node it is meant to kill); and what the scenarios will not check, as notes."""
    findings = Findings(notes=list(configuration.notes))
    if not configuration.is_stonith_enabled:
        findings.note("stonith-enabled is false: nodes lost are not expected to be fenced")
    for device in configuration.primitives():
        if device.standard != "stonith" or configuration.is_stopped_by_configuration(device.id):
            continue
        targets = fence_targets(device)
        if targets is None or set(configuration.node_names) <= targets:
            continue
        allowed = allowed_nodes(configuration, device.id)
        if allowed is None:
            findings.note(f"{device.id}: where it may run cannot be told offline")
            continue
        for node in sorted(allowed & targets):
            findings.problems.append(
                f"configuration: {device.id} fences {node} and may run on {node} "
                f"(no -INFINITY location constraint keeps it off {node})"
            )
    return findings


def check_fencing(
    configuration: Configuration, lost_node: str, fenced: Iterable[str], scenario: str
) -> list[str]:
    """The lost node must have been fenced when stonith is enabled."""
    if configuration.is_stonith_enabled and lost_node not in set(fenced):
        return [f"{scenario}: {lost_node} was not fenced (stonith-enabled is true)"]
    return []


# --------------------------------------------------------------------------------------------
# Running the scenarios


def inject_promotion_scores(cib: ET.Element, configuration: Configuration) -> None:
    """Give every node the promotion score of every promotable clone, as a transient node
    attribute in the status section — what ``crm_attribute --promotion`` leaves there.

    crm_simulate has no option to inject a node attribute; a ``<node_state>`` holding only
    ``<transient_attributes>`` is enough, ``--node-up`` fills in the rest.
    """
    names = promotion_attributes(configuration)
    if not names:
        return
    status = cib.find("status")
    if status is None:
        status = ET.SubElement(cib, "status")
    for node in configuration.nodes:
        state = next(
            (s for s in status.findall("node_state") if s.get("id") == node.id),
            None,
        )
        if state is None:
            state = ET.SubElement(status, "node_state", id=node.id, uname=node.name)
        transient = state.find("transient_attributes")
        if transient is None:
            transient = ET.SubElement(state, "transient_attributes", id=node.id)
        attributes = transient.find("instance_attributes")
        if attributes is None:
            attributes = ET.SubElement(transient, "instance_attributes", id=f"status-{node.id}")
        for name in names:
            pair = next((p for p in attributes.findall("nvpair") if p.get("name") == name), None)
            if pair is None:
                pair = ET.SubElement(attributes, "nvpair", id=f"status-{node.id}-{name}", name=name)
            pair.set("value", PROMOTION_SCORE)


def events_argv(
    source: Path,
    target: Path,
    node_up: Sequence[str] = (),
    node_fail: Sequence[str] = (),
    quorum: bool = False,
) -> list[str]:
    """crm_simulate applying events to ``source`` and saving the CIB, without simulating."""
    argv = [CRM_SIMULATE, "--xml-file", str(source), "--quiet", "--output-as=xml"]
    if quorum:
        # An empty status has no have-quorum: without it nothing starts ("no quorum").
        argv += ["--quorum", "true"]
    for node in node_up:
        argv += ["--node-up", node]
    for node in node_fail:
        argv += ["--node-fail", node]
    return [*argv, "--save-output", str(target)]


def simulate_argv(source: Path, target: Path) -> list[str]:
    """crm_simulate computing one transition from ``source`` and saving the CIB after it."""
    return [
        CRM_SIMULATE,
        "--xml-file",
        str(source),
        "--simulate",
        "--save-output",
        str(target),
        "--output-as=xml",
    ]


def _refused(result: Result) -> SimulationFailed:
    # With --output-as=xml the reason is on stderr (schema errors) and the summary in the
    # XML's <status message>.
    summary = ""
    try:
        status = ET.fromstring(result.stdout).find("status")
        summary = status.get("message", "") if status is not None else ""
    except ET.ParseError:
        pass
    details = [" ".join(line.split()) for line in result.stderr.splitlines() if line.strip()]
    return SimulationFailed(
        f"crm_simulate refused the CIB (exit {result.returncode}"
        + (f", {summary}" if summary else "")
        + ")"
        + (f": {'; '.join(details)}" if details else ""),
        result,
    )


def simulate(
    runner: Runner,
    source: Path,
    target: Path,
    node_up: Sequence[str] = (),
    node_fail: Sequence[str] = (),
    quorum: bool = False,
) -> SimulationRound:
    """One transition: crm_simulate computes it from ``source`` (after the events given),
    simulates it as successful and saves the resulting CIB to ``target``. Raises
    :class:`SimulationFailed` when crm_simulate refuses the CIB or reports no result.

    The events are applied by a call of their own, saved beside ``target``: Pacemaker 3.0.0's
    ``--simulate --output-as=xml`` ends its document after the injected events when any are
    given — no transition, no revised status (docs/debian13.md) — while a simulation without
    events is whole on 3.0 as on 2.1."""
    if node_up or node_fail or quorum:
        events = target.with_name(f"{target.stem}-events{target.suffix}")
        result = runner.run(
            events_argv(source, events, node_up, node_fail, quorum), timeout=TOOL_TIMEOUT_S
        )
        if not result.ok:
            raise _refused(result)
        source = events
    result = runner.run(simulate_argv(source, target), timeout=TOOL_TIMEOUT_S)
    if not result.ok:
        raise _refused(result)
    return parse_simulation(result.stdout)


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario: what went wrong, what was not checked, where everything ended up."""

    name: str
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()
    placement: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    online_nodes: tuple[str, ...] = ()
    rounds: int = 0
    seconds: float = 0.0
    final_cib: Optional[Path] = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def run_scenario(
    runner: Runner,
    configuration: Configuration,
    name: str,
    source: Path,
    workdir: Path,
    node_up: Sequence[str] = (),
    node_fail: Sequence[str] = (),
    quorum: bool = False,
    clock: Optional[Clock] = None,
) -> ScenarioResult:
    """Apply the events, simulate until a transition has nothing to do (at most
    MAX_ROUNDS), and check the placement it settled in."""
    clock = clock or SystemClock()
    started = clock.monotonic()
    problems: list[str] = []
    rounds = 1
    current = workdir / f"{_slug(name)}-1.xml"
    try:
        last = simulate(runner, source, current, node_up, node_fail, quorum)
        fenced = list(last.fenced)
        while last.transition and rounds < MAX_ROUNDS:
            rounds += 1
            previous, current = current, workdir / f"{_slug(name)}-{rounds}.xml"
            last = simulate(runner, previous, current)
            fenced += last.fenced
    except SimulationFailed as err:
        return ScenarioResult(
            name, (f"{name}: {err}",), rounds=rounds, seconds=clock.monotonic() - started
        )
    if last.transition:
        problems.append(
            f"{name}: the cluster did not settle within {MAX_ROUNDS} transitions (still: "
            f"{'; '.join(last.transition[:3])})"
        )
    findings = check_placement(configuration, last.placement, last.online_nodes, name)
    problems += findings.problems
    for node in node_fail:
        problems += check_fencing(configuration, node, fenced, name)
    return ScenarioResult(
        name,
        tuple(problems),
        tuple(findings.notes),
        complete_placement(configuration, last.placement),
        last.online_nodes,
        rounds,
        clock.monotonic() - started,
        current,
    )


def run_scenarios(
    cib_path: Path, runner: Runner, workdir: Path, clock: Optional[Clock] = None
) -> list[ScenarioResult]:
    """The "configuration" findings, then start-up, then each node of ``<nodes>`` lost in
    turn from the started state. Files go to ``workdir`` (``start-up-N.xml``, …, kept for a
    look with ``crm_simulate -x``). Raises :class:`CibError` for a file that is not a CIB;
    a CIB crm_simulate refuses is a problem of the start-up scenario."""
    cib = read_cib(cib_path)
    configuration = read_configuration(cib)
    static = check_configuration(configuration)
    results = [ScenarioResult("configuration", tuple(static.problems), tuple(static.notes))]
    inject_promotion_scores(cib, configuration)
    start_input = workdir / "start-up-0.xml"
    start_input.write_text(ET.tostring(cib, encoding="unicode"), encoding="utf-8")
    nodes = configuration.node_names
    start = run_scenario(
        runner,
        configuration,
        "start-up",
        start_input,
        workdir,
        node_up=nodes,
        quorum=True,
        clock=clock,
    )
    if start.final_cib is None:
        note = "the node-lost scenarios start from the started cluster: not run"
        results.append(replace(start, notes=(*start.notes, note)))
        return results
    results.append(start)
    # Quorum stays as start-up left it (have-quorum=true): losing one node of three keeps
    # it, and a two-node cluster runs corosync's two_node.
    for node in nodes:
        results.append(
            run_scenario(
                runner,
                configuration,
                f"{node} lost",
                start.final_cib,
                workdir,
                node_fail=(node,),
                clock=clock,
            )
        )
    return results
