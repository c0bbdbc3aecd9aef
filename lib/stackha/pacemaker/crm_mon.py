"""``crm_mon``: the cluster's state, parsed from its XML output."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from stackha.runner import CommandError

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Optional

    from stackha.runner import Result, Runner


TOOL = "/usr/sbin/crm_mon"
TIMEOUT_S = 15.0
# Options as Pacemaker 2.1.5's crm_mon --help-all lists them. The fencing history comes at the
# level --fence-history asks for (without it 1: failed and pending actions only); 3 is the full
# history, not reduced to the last event of each kind. XML output includes the other sections by
# default; --inactive and --show-node-attributes say so anyway, as the command reads them.
DETAILED_ARGV = (
    TOOL,
    "--one-shot",
    "--inactive",
    "--output-as=xml",
    "--show-node-attributes",
    "--fence-history=3",
)
# Roles as Pacemaker 2.1 names them; crm_mon before 2.1 printed the legacy names.
LEGACY_ROLES = {"Master": "Promoted", "Slave": "Unpromoted"}
# Two tasks have an underscore in their name: an op key ends in _<task>_<interval>.
TWO_WORD_TASKS = ("migrate_to", "migrate_from")


@dataclass(frozen=True)
class NodeState:
    name: str
    online: bool
    standby: bool
    unclean: bool
    maintenance: bool = False
    pending: bool = False
    # member, remote (pacemaker_remote and guest nodes) or ping
    type: str = "member"


@dataclass(frozen=True)
class ResourceState:
    """One primitive's instance as crm_mon lists it (a clone lists one per instance)."""

    id: str
    agent: str
    role: str
    active: bool
    failed: bool
    nodes: tuple[str, ...]
    # The clone this is an instance of (directly, or through a group in it), and whether that
    # clone is promotable.
    clone: Optional[str] = None
    promotable: bool = False

    @property
    def primitive(self) -> str:
        """The primitive's id: a unique clone's instances are ``id:N``."""
        return self.id.split(":", 1)[0]


@dataclass(frozen=True)
class Failure:
    """A failed resource action (crm_mon's "Failed Resource Actions")."""

    op_key: str
    node: str
    exit_status: str
    exit_reason: str
    exit_code: int
    status: str
    call: Optional[int] = None
    # Only when Pacemaker knows when it happened (it nearly always does).
    task: Optional[str] = None
    interval_ms: Optional[int] = None
    last_rc_change: Optional[str] = None

    @property
    def resource(self) -> str:
        """The primitive's id, from ``<resource>_<task>_<interval>``."""
        return _split_op_key(self.op_key, self.task)[0]

    @property
    def operation(self) -> str:
        return self.task or _split_op_key(self.op_key, None)[1]


@dataclass(frozen=True)
class FenceEvent:
    """One entry of the fencer's history."""

    target: str
    action: str
    # success, failed or pending
    status: str
    origin: str
    client: str
    delegate: Optional[str] = None
    completed: Optional[str] = None
    exit_reason: Optional[str] = None


@dataclass(frozen=True)
class ClusterStatus:
    dc: Optional[str]
    has_quorum: bool
    nodes: tuple[NodeState, ...]
    resources: tuple[ResourceState, ...]
    # {node: {attribute: value}}, for online nodes only: crm_mon skips offline ones.
    node_attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    fence_history: tuple[FenceEvent, ...] = ()
    # Set when crm_mon could not read the fencer's history (its exit code).
    fence_history_error: Optional[int] = None
    stonith_enabled: Optional[bool] = None

    @property
    def online_nodes(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes if node.online)

    def instances(self, resource_id: str) -> tuple[ResourceState, ...]:
        """Every instance of a primitive (``id`` or, in a clone, ``id:N``)."""
        return tuple(r for r in self.resources if r.id.split(":", 1)[0] == resource_id)

    def attribute(self, node: str, name: str) -> Optional[str]:
        """Node attribute ``name`` of ``node``, or None (unset, or the node is offline)."""
        return self.node_attributes.get(node, {}).get(name)


def _true(value: Optional[str]) -> bool:
    return value == "true"


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _split_op_key(op_key: str, task: Optional[str]) -> tuple[str, str]:
    """``galera_monitor_10000`` → (``galera``, ``monitor``); a unique clone's ``:N`` dropped."""
    head, _, _interval = op_key.rpartition("_")
    tasks = (task,) if task else TWO_WORD_TASKS
    for candidate in tasks:
        if candidate and head.endswith(f"_{candidate}"):
            resource = head[: -len(candidate) - 1]
            return resource.split(":", 1)[0], candidate
    resource, _, operation = head.rpartition("_")
    return (resource or head).split(":", 1)[0], operation


def _resources(
    element: ET.Element, clone: Optional[str] = None, promotable: bool = False
) -> Iterator[ResourceState]:
    for child in element:
        if child.tag == "resource":
            role = child.get("role", "")
            yield ResourceState(
                id=child.get("id", ""),
                agent=child.get("resource_agent", ""),
                role=LEGACY_ROLES.get(role, role),
                active=_true(child.get("active")),
                failed=_true(child.get("failed")),
                nodes=tuple(n.get("name", "") for n in child.iterfind("node")),
                clone=clone,
                promotable=promotable,
            )
        elif child.tag == "clone":
            yield from _resources(child, child.get("id"), _true(child.get("multi_state")))
        elif child.tag in ("group", "bundle", "replica"):
            yield from _resources(child, clone, promotable)


def _failure(element: ET.Element) -> Failure:
    reason = element.get("exitreason", "")
    return Failure(
        op_key=element.get("op_key") or element.get("id") or "",
        node=element.get("node", ""),
        exit_status=element.get("exitstatus", ""),
        # Pacemaker writes "none" when the agent gave no reason.
        exit_reason="" if reason == "none" else reason,
        exit_code=_int(element.get("exitcode")) or 0,
        status=element.get("status", ""),
        call=_int(element.get("call")),
        task=element.get("task"),
        interval_ms=_int(element.get("interval")),
        last_rc_change=element.get("last-rc-change"),
    )


def _fence_event(element: ET.Element) -> FenceEvent:
    return FenceEvent(
        target=element.get("target", ""),
        action=element.get("action", ""),
        status=element.get("status", ""),
        origin=element.get("origin", ""),
        client=element.get("client", ""),
        delegate=element.get("delegate"),
        completed=element.get("completed"),
        exit_reason=element.get("exit-reason"),
    )


def parse_status(xml_text: str) -> ClusterStatus:
    """Parse ``crm_mon --output-as=xml``; raises ``xml.etree.ElementTree.ParseError``."""
    root = ET.fromstring(xml_text)
    dc = root.find("summary/current_dc")
    present = dc is not None and _true(dc.get("present"))
    options = root.find("summary/cluster_options")
    nodes = tuple(
        NodeState(
            name=node.get("name", ""),
            online=_true(node.get("online")),
            standby=_true(node.get("standby")),
            unclean=_true(node.get("unclean")),
            maintenance=_true(node.get("maintenance")),
            pending=_true(node.get("pending")),
            type=node.get("type", "member"),
        )
        for node in root.iterfind("nodes/node")
    )
    resources_element = root.find("resources")
    resources = tuple(_resources(resources_element)) if resources_element is not None else ()
    attributes = {
        node.get("name", ""): {
            attribute.get("name", ""): attribute.get("value", "")
            for attribute in node.iterfind("attribute")
        }
        for node in root.iterfind("node_attributes/node")
    }
    history = root.find("fence_history")
    history_status = _int(history.get("status")) if history is not None else None
    return ClusterStatus(
        dc=dc.get("name") if present and dc is not None else None,
        has_quorum=present and dc is not None and _true(dc.get("with_quorum")),
        nodes=nodes,
        resources=resources,
        node_attributes=attributes,
        failures=tuple(_failure(f) for f in root.iterfind("failures/failure")),
        fence_history=tuple(_fence_event(e) for e in root.iterfind("fence_history/fence_event")),
        fence_history_error=history_status or None,
        stonith_enabled=(
            _true(options.get("stonith-enabled"))
            if options is not None and options.get("stonith-enabled") is not None
            else None
        ),
    )


def error_message(result: Result) -> str:
    """Why crm_mon failed. With ``--output-as=xml`` the reason is in the XML on stdout
    (``<status code message><errors><error>``), and stderr is empty."""
    try:
        root = ET.fromstring(result.stdout)
    except ET.ParseError:
        return result.output_line() or f"exit {result.returncode}"
    errors = [e.text.strip() for e in root.iterfind("status/errors/error") if e.text]
    status = root.find("status")
    if errors:
        return "; ".join(errors)
    if status is not None and status.get("message"):
        return f"{status.get('message')} (exit {result.returncode})"
    return result.output_line() or f"exit {result.returncode}"


def status(runner: Runner, timeout: float = TIMEOUT_S) -> ClusterStatus:
    """The cluster's state now; raises CommandError when crm_mon cannot reach the cluster."""
    result = runner.run([TOOL, "--one-shot", "--inactive", "--output-as=xml"], timeout=timeout)
    if not result.ok:
        raise CommandError(f"crm_mon failed: {error_message(result)}", result)
    return parse_status(result.stdout)


def detailed_status(runner: Runner, timeout: float = TIMEOUT_S) -> ClusterStatus:
    """The cluster's state with node attributes, failed actions and the full fencing history.

    Raises CommandError when crm_mon cannot run or reach the cluster, and
    ``xml.etree.ElementTree.ParseError`` when it printed something that is not XML.
    """
    result = runner.run(list(DETAILED_ARGV), timeout=timeout)
    if not result.ok:
        raise CommandError(f"crm_mon failed: {error_message(result)}", result)
    return parse_status(result.stdout)
