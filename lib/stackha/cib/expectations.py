"""What a cluster's placement must satisfy, derived from its configuration (no fixed ids): the
checks the ``crm_simulate`` scenarios (:mod:`stackha.cib.simulate`) apply to the placement each
scenario settles in, and the checks of the configuration alone. Pure functions over a
:class:`~stackha.cib.model.Configuration` and a placement (resource id → node → role):
unit-testable without Pacemaker.

Each named check states one rule, for one resource or constraint:

- :func:`clone_runs_on_every_allowed_node`, :func:`clone_runs_clone_max_instances`: a clone
  runs an instance on every online node it is allowed on, ``clone-max`` instances when that is
  fewer;
- :func:`promotable_clone_is_promoted_everywhere_it_runs`,
  :func:`promotable_clone_is_promoted_promoted_max_times`: a promotable clone is Promoted on
  every node it runs on when ``promoted-max`` allows, else on exactly ``promoted-max`` nodes;
- :func:`colocated_resource_runs_only_with_its_partner`: a resource colocated INFINITY with
  another runs only where the other runs (in the role the constraint names);
- :func:`interleaved_clone_runs_only_where_first_is_ready`,
  :func:`resource_runs_only_once_first_is_ready`: after a mandatory ordering, a resource runs
  only where (interleaved clones) or when (the rest) the "first" resource has reached the
  state the first action implies;
- :func:`fence_device_does_not_run_on_its_targets`: no fence device runs on a node it fences;
- :func:`resource_is_active_somewhere`: every resource not stopped by configuration is active
  somewhere an allowed node is online;

and, before any simulation, :func:`fence_device_is_kept_off_its_targets`; after a node is
lost, :func:`lost_node_was_fenced`. Where the configuration uses something these checks
cannot evaluate offline (a rule on a date, a bundle), the check is skipped for that resource
and a note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stackha.cib.model import fence_targets
from stackha.pacemaker.values import (
    INFINITY,
    PROMOTED,
    STARTED,
    STOPPED,
    UNPROMOTED,
    is_true,
    normal_role,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
    from typing import Optional

    from stackha.cib.model import Colocation, Configuration, Ordering, Resource


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class Scene:
    """Where one scenario left the cluster, as the checks see it."""

    configuration: Configuration
    # every configured resource (see complete_placement) → node → role
    placement: Mapping[str, Mapping[str, str]]
    online: frozenset[str]
    name: str

    def nodes_in_role(self, resource_id: str, role: str) -> set[str]:
        """The nodes where the resource is in ``role`` (any active role for Started)."""
        return {
            node
            for node, current in self.placement.get(resource_id, {}).items()
            if _is_in_role(current, role)
        }


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
# The checks of one scenario's placement


def check_placement(
    configuration: Configuration,
    primitives: Mapping[str, Mapping[str, str]],
    online_nodes: Iterable[str],
    scenario: str,
) -> Findings:
    """Every rule (see the module's docstring) the placement of the primitives (id → node →
    role) breaks with ``online_nodes`` up, one readable line each, in the order of the rules
    and, for each rule, of the configuration."""
    findings = Findings()
    if configuration.stops_all_resources:
        findings.note("stop-all-resources is set: nothing is expected to run")
        return findings
    scene = Scene(
        configuration,
        complete_placement(configuration, primitives),
        frozenset(online_nodes),
        scenario,
    )
    problems = findings.problems
    counted = list(_clones_counted(scene, findings))
    for clone in counted:
        problems += clone_runs_on_every_allowed_node(scene, clone)
        problems += clone_runs_clone_max_instances(scene, clone)
    for clone in _promotable_clones(scene, findings):
        problems += promotable_clone_is_promoted_everywhere_it_runs(scene, clone)
        problems += promotable_clone_is_promoted_promoted_max_times(scene, clone)
    for colocation in _colocations_checked(scene, findings):
        problems += colocated_resource_runs_only_with_its_partner(scene, colocation)
    for ordering in _orderings_checked(configuration):
        problems += interleaved_clone_runs_only_where_first_is_ready(scene, ordering)
        problems += resource_runs_only_once_first_is_ready(scene, ordering)
    for device, targets in _fence_devices_checked(scene, findings):
        problems += fence_device_does_not_run_on_its_targets(scene, device, targets)
    for unit in _units_expected_to_run(scene, findings, {clone.id for clone in counted}):
        problems += resource_is_active_somewhere(scene, unit)
    return findings


# a. clone instances


def _clone_expectation(scene: Scene, clone: Resource) -> tuple[set[str], set[str], int]:
    """(the online nodes it is allowed on, those it runs on, its clone-max or 0)."""
    allowed = scene.configuration.allowed_nodes(clone.id) or frozenset()
    expected = set(scene.online & allowed)
    running = scene.nodes_in_role(clone.id, STARTED)
    return expected, running, scene.configuration.meta_number(clone.id, ("clone-max",), 0)


def clone_runs_on_every_allowed_node(scene: Scene, clone: Resource) -> list[str]:
    """A clone whose clone-max does not limit it runs on every online node it is allowed on."""
    expected, running, clone_max = _clone_expectation(scene, clone)
    if 0 < clone_max < len(expected) or not expected - running:
        return []
    everywhere = (
        "every online node" if expected == scene.online else "every online node it is allowed on"
    )
    wanted = f"{everywhere} ({_nodes_text(expected)})"
    return _instances_missing(scene, clone, expected, running, wanted)


def clone_runs_clone_max_instances(scene: Scene, clone: Resource) -> list[str]:
    """A clone whose clone-max is below the nodes it may run on runs exactly that many."""
    expected, running, clone_max = _clone_expectation(scene, clone)
    if not 0 < clone_max < len(expected) or len(running & expected) == clone_max:
        return []
    wanted = f"{clone_max} (clone-max) of {_nodes_text(expected)}"
    return _instances_missing(scene, clone, expected, running, wanted)


def _instances_missing(
    scene: Scene, clone: Resource, expected: set[str], running: set[str], wanted: str
) -> list[str]:
    """The problem of a clone running on fewer of the ``expected`` nodes than ``wanted``
    says, with what may hold it back there."""
    return [
        _with_causes(
            f"{scene.name}: {clone.id} runs on {_where(running)}, expected on {wanted}",
            _absence_causes(scene, clone.id, expected - running),
        )
    ]


def _clones_counted(scene: Scene, findings: Findings) -> Iterator[Resource]:
    """The clones whose instance count can be told: expected to run, at most one instance a
    node, allowed nodes known offline, no anti-colocation to thin them."""
    configuration = scene.configuration
    for clone in configuration.clones():
        if not _is_expected_to_run(configuration, clone.id, findings):
            continue
        if (
            is_true(configuration.meta(clone.id, "globally-unique"))
            or configuration.meta_number(clone.id, ("clone-node-max",), 1) > 1
        ):
            findings.note(f"{clone.id} is a unique clone or several per node: count not checked")
            continue
        if configuration.allowed_nodes(clone.id) is None:
            findings.note(
                f"{clone.id}: where it may run cannot be told offline "
                f"({configuration.undecidable.get(clone.id) or 'a rule on a group or clone'})"
            )
            continue
        if any(c.rsc == clone.id and c.score <= -INFINITY for c in configuration.colocations):
            findings.note(f"{clone.id} is anti-colocated: instance count not checked")
            continue
        yield clone


# b. promotion


def _promotion_expectation(scene: Scene, clone: Resource) -> tuple[set[str], set[str], int]:
    """(the nodes it runs on and may be promoted on, those it is Promoted on, promoted-max:
    0 when its target-role is Unpromoted)."""
    configuration = scene.configuration
    running = scene.nodes_in_role(clone.id, STARTED)
    candidates = running - configuration.promotion_bans(clone.id)
    promoted = scene.nodes_in_role(clone.id, PROMOTED)
    # master-max is promoted-max's pre-2.0 name, still read by Pacemaker 2.1.
    promoted_max = configuration.meta_number(clone.id, ("promoted-max", "master-max"), 1)
    if normal_role(configuration.meta(clone.id, "target-role")) == UNPROMOTED:
        promoted_max = 0
    return candidates, promoted, promoted_max


def promotable_clone_is_promoted_everywhere_it_runs(scene: Scene, clone: Resource) -> list[str]:
    """When promoted-max covers every node the clone runs on (and may be promoted on), it
    is Promoted on each."""
    candidates, promoted, promoted_max = _promotion_expectation(scene, clone)
    if promoted_max < len(candidates) or not candidates - promoted:
        return []
    return [
        _with_causes(
            f"{scene.name}: {clone.id} is Promoted on {_where(promoted)}, expected "
            f"Promoted on every node it runs on ({_nodes_text(candidates)}), "
            f"promoted-max={promoted_max}",
            _absence_causes(scene, clone.id, candidates - promoted),
        )
    ]


def promotable_clone_is_promoted_promoted_max_times(scene: Scene, clone: Resource) -> list[str]:
    """When the clone runs on more nodes than promoted-max, exactly promoted-max instances
    are Promoted."""
    candidates, promoted, promoted_max = _promotion_expectation(scene, clone)
    if promoted_max >= len(candidates) or len(promoted) == promoted_max:
        return []
    return [
        f"{scene.name}: {clone.id} is Promoted on {_where(promoted)}, expected on exactly "
        f"{promoted_max} of {_nodes_text(candidates)} (promoted-max={promoted_max})"
    ]


def _promotable_clones(scene: Scene, findings: Findings) -> Iterator[Resource]:
    for clone in scene.configuration.clones():
        if clone.promotable and _is_expected_to_run(scene.configuration, clone.id, findings):
            yield clone


# c. INFINITY colocations


def colocated_resource_runs_only_with_its_partner(
    scene: Scene, colocation: Colocation
) -> list[str]:
    """``rsc`` colocated INFINITY with ``with_rsc`` is (in its role) only where ``with_rsc``
    is (in its)."""
    dependent = scene.nodes_in_role(colocation.rsc, colocation.rsc_role)
    there = scene.nodes_in_role(colocation.with_rsc, colocation.with_role)
    stray = dependent - there
    if not stray:
        return []
    return [
        f"{scene.name}: {colocation.rsc} {_is(colocation.rsc_role)} on "
        f"{_nodes_text(stray)}, where {colocation.with_rsc} "
        f"{_is_not(colocation.with_role)} (colocation {colocation.id}: "
        f"{_role_phrase(colocation.rsc, colocation.rsc_role)} with "
        f"{_role_phrase(colocation.with_rsc, colocation.with_role)}, INFINITY)"
    ]


def _colocations_checked(scene: Scene, findings: Findings) -> Iterator[Colocation]:
    """The INFINITY colocations by node that name active roles."""
    for colocation in scene.configuration.colocations:
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
        yield colocation


# d. mandatory orderings


def interleaved_clone_runs_only_where_first_is_ready(scene: Scene, ordering: Ordering) -> list[str]:
    """Interleaved clones are ordered node by node: "then" is in its state only on nodes
    where "first" has reached the state the first action implies."""
    if not _is_interleaved(scene.configuration, ordering):
        return []
    first_state, then_state = _ordering_states(ordering)
    early = scene.nodes_in_role(ordering.then, then_state) - scene.nodes_in_role(
        ordering.first, first_state
    )
    if not early:
        return []
    return [
        f"{scene.name}: {ordering.then} {_is(then_state)} on {_nodes_text(early)}, "
        f"where {ordering.first} {_is_not(first_state)} ({_ordering_summary(ordering)}, "
        "interleaved)"
    ]


def resource_runs_only_once_first_is_ready(scene: Scene, ordering: Ordering) -> list[str]:
    """Otherwise "then" is in its state anywhere only while "first" is in its state on some
    node."""
    if _is_interleaved(scene.configuration, ordering):
        return []
    first_state, then_state = _ordering_states(ordering)
    then_nodes = scene.nodes_in_role(ordering.then, then_state)
    if not then_nodes or scene.nodes_in_role(ordering.first, first_state):
        return []
    return [
        f"{scene.name}: {ordering.then} {_is(then_state)} on {_nodes_text(then_nodes)} "
        f"while {ordering.first} {_is(first_state)} on no node ({_ordering_summary(ordering)})"
    ]


def _ordering_summary(ordering: Ordering) -> str:
    return (
        f"order {ordering.id}: {ordering.first_action} {ordering.first} then "
        f"{ordering.then_action} {ordering.then}"
    )


def _state_for_action(action: str) -> Optional[str]:
    """The state a resource is in once the action is done."""
    return {"start": STARTED, "promote": PROMOTED}.get(action)


def _ordering_states(ordering: Ordering) -> tuple[str, str]:
    """The state "first" must be in, and the state of the "then" instances it constrains
    (both actions are start or promote in the orderings checked: the fallback is never
    taken)."""
    return (
        _state_for_action(ordering.first_action) or STARTED,
        _state_for_action(ordering.then_action) or STARTED,
    )


def _orderings_checked(configuration: Configuration) -> Iterator[Ordering]:
    """Mandatory orderings of start/promote after start/promote."""
    for ordering in configuration.orderings:
        if (
            ordering.is_mandatory
            and _state_for_action(ordering.first_action) is not None
            and _state_for_action(ordering.then_action) is not None
        ):
            yield ordering


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


# e. fence devices


def fence_device_does_not_run_on_its_targets(
    scene: Scene, device: Resource, targets: frozenset[str]
) -> list[str]:
    """A fence device never runs on a node it fences (it would have to fence itself)."""
    on_target = scene.nodes_in_role(device.id, STARTED) & targets
    return [
        f"{scene.name}: {device.id} runs on {node}, the node it fences"
        for node in sorted(on_target)
    ]


def _fence_devices_checked(
    scene: Scene, findings: Findings
) -> Iterator[tuple[Resource, frozenset[str]]]:
    """The fence devices with known targets that could run elsewhere, with their targets."""
    for device in scene.configuration.stonith_devices():
        targets = _targets_short_of_every_node(scene.configuration, device)
        if targets is None:
            findings.note(_untargeted_note(scene.configuration, device))
            continue
        yield device, targets


def _targets_short_of_every_node(
    configuration: Configuration, device: Resource
) -> Optional[frozenset[str]]:
    """The nodes the device fences, None when unknown (asked at run time) or every node (a
    device that fences all must run on one of them)."""
    targets = fence_targets(device)
    if targets is None or set(configuration.node_names) <= set(targets):
        return None
    return frozenset(targets)


def _untargeted_note(configuration: Configuration, device: Resource) -> str:
    if fence_targets(device) is None:
        return (
            f"{device.id} has no pcmk_host_list or pcmk_host_map: which nodes it fences "
            "is asked at run time, not checked"
        )
    return f"{device.id} fences every node: where it runs is not checked"


# f. everything expected to run runs


def resource_is_active_somewhere(scene: Scene, unit: str) -> list[str]:
    """A resource (a clone as a whole) expected to run is active on some node, when an
    online node may take it."""
    allowed = scene.configuration.allowed_nodes(unit) or frozenset()
    candidates = set(scene.online & allowed)
    if not candidates or scene.nodes_in_role(unit, STARTED):
        return []
    return [
        _with_causes(
            f"{scene.name}: {unit} is active on no node, expected on one of "
            f"{_nodes_text(candidates)}",
            _absence_causes(scene, unit, candidates),
        )
    ]


def _units_expected_to_run(
    scene: Scene, findings: Findings, counted_clones: set[str]
) -> Iterator[str]:
    """Each primitive, or the clone it is in (once), that is expected to run and whose
    allowed nodes are known; a clone whose instances were counted is left out (it runs
    wherever it should already). A bundle's primitive is not checked."""
    configuration = scene.configuration
    units: dict[str, None] = {}
    for primitive in configuration.primitives():
        if configuration.is_in_bundle(primitive.id):
            continue
        enclosing = configuration.clone_of(primitive.id)
        units[enclosing.id if enclosing is not None else primitive.id] = None
    for unit in units:
        if unit in counted_clones or not _is_expected_to_run(configuration, unit, findings):
            continue
        if configuration.allowed_nodes(unit) is None:
            findings.note(
                f"{unit}: where it may run cannot be told offline "
                f"({configuration.undecidable.get(unit) or 'a rule on its group or clone'})"
            )
            continue
        yield unit


# --------------------------------------------------------------------------------------------
# The checks of the configuration alone, and of fencing


def check_configuration(configuration: Configuration) -> Findings:
    """What the configuration itself promises badly, before any simulation (see
    :func:`fence_device_is_kept_off_its_targets`); and what the scenarios will not check, as
    notes."""
    findings = Findings()
    for resource in configuration.resources.values():
        if resource.kind == "bundle":
            findings.note(f"bundle {resource.id}: not checked (only primitives, groups and clones)")
    for note in configuration.notes:
        findings.note(note)
    if not configuration.is_stonith_enabled:
        findings.note("stonith-enabled is false: nodes lost are not expected to be fenced")
    for device in configuration.stonith_devices():
        if configuration.is_stopped_by_configuration(device.id):
            continue
        if _targets_short_of_every_node(configuration, device) is None:
            continue
        if configuration.allowed_nodes(device.id) is None:
            findings.note(f"{device.id}: where it may run cannot be told offline")
            continue
        findings.problems += fence_device_is_kept_off_its_targets(configuration, device)
    return findings


def fence_device_is_kept_off_its_targets(
    configuration: Configuration, device: Resource
) -> list[str]:
    """A fence device is not allowed on a node it fences: it would be monitored, and have to
    fence, from the node it is meant to kill."""
    targets = _targets_short_of_every_node(configuration, device) or frozenset()
    allowed = configuration.allowed_nodes(device.id) or frozenset()
    return [
        f"configuration: {device.id} fences {node} and may run on {node} "
        f"(no -INFINITY location constraint keeps it off {node})"
        for node in sorted(allowed & targets)
    ]


def lost_node_was_fenced(
    configuration: Configuration, lost_node: str, fenced: Iterable[str], scenario: str
) -> list[str]:
    """The lost node must have been fenced when stonith is enabled."""
    if configuration.is_stonith_enabled and lost_node not in set(fenced):
        return [f"{scenario}: {lost_node} was not fenced (stonith-enabled is true)"]
    return []


# --------------------------------------------------------------------------------------------
# What the checks share


def _is_expected_to_run(configuration: Configuration, resource_id: str, findings: Findings) -> bool:
    """Not stopped by its configuration, and managed (where an unmanaged resource runs is
    the operator's doing: noted, not checked)."""
    if configuration.is_stopped_by_configuration(resource_id):
        return False
    if not configuration.is_managed(resource_id):
        findings.note(f"{resource_id} is not managed: where it runs is not checked")
        return False
    return True


def _is_in_role(role: Optional[str], wanted: str) -> bool:
    if role is None or role == STOPPED:
        return False
    if wanted == STARTED:
        return True
    return role == wanted


def _absence_causes(scene: Scene, unit: str, missing: set[str]) -> list[str]:
    """Why ``unit`` may be missing from ``missing``: its INFINITY colocations and mandatory
    orderings whose other side is not there (in the role they need)."""
    configuration = scene.configuration
    # A group member is held back by its group's constraints as much as by its own.
    held = {resource.id for resource in configuration.ancestors(unit)}
    causes = []
    for colocation in configuration.colocations:
        if colocation.rsc not in held or colocation.score < INFINITY:
            continue
        there = scene.nodes_in_role(colocation.with_rsc, colocation.with_role)
        if missing - there:
            causes.append(
                f"it is colocated INFINITY with "
                f"{_role_phrase(colocation.with_rsc, colocation.with_role)} ({colocation.id}), "
                f"which {_is(colocation.with_role)} on {_where(there)}"
            )
    for ordering in _orderings_checked(configuration):
        if ordering.then not in held:
            continue
        first_state, _then_state = _ordering_states(ordering)
        there = scene.nodes_in_role(ordering.first, first_state)
        lacking = missing - there if _is_interleaved(configuration, ordering) else not there
        if lacking:
            causes.append(
                f"it is ordered after {ordering.first_action} {ordering.first} ({ordering.id}),"
                f" which {_is(first_state)} on {_where(there)}"
            )
    return causes


def _with_causes(problem: str, causes: Sequence[str]) -> str:
    return f"{problem}: {'; '.join(causes)}" if causes else problem


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


def _is(role: str) -> str:
    """The verb for being in a role: "runs" (any active role), "is Promoted"…"""
    return "runs" if role == STARTED else f"is {role}"


def _is_not(role: str) -> str:
    return "does not run" if role == STARTED else f"is not {role}"


def _role_phrase(resource_id: str, role: str) -> str:
    return resource_id if role == STARTED else f"{role} {resource_id}"
