"""``stackha status``: the cluster as an OpenStack operator thinks of it.

Read from ``crm_mon``'s XML (states, node attributes, failed actions, the fencing history), the
CIB's configuration through :mod:`stackha.cib.model` (VIP addresses, what each fence device
fences, the fencing levels, the cluster's name, where each clone may run) and, when this node
runs RabbitMQ, ``rabbitmqctl cluster_status``. Resources are classified by their agent, never by
their ids: an ``ocf:heartbeat:IPaddr2`` is a VIP whatever it is called, an
``ocf:heartbeat:galera`` clone is Galera like ``ocf:stackha:galera``.

:func:`gather` is the one function that runs commands; :func:`parse_configuration`,
:func:`summarise`, :func:`as_json` and :func:`render_text` are pure. No lxml: the command
should answer at once.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field

from stackha.cib import model
from stackha.cib.model import Configuration, FencingLevel
from stackha.pacemaker import cibadmin, crm_mon
from stackha.runner import CommandError, CommandNotFound
from stackha.services import rabbitmq

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

    from stackha.runner import Runner


RABBITMQCTL = rabbitmq.RABBITMQCTL
TIMEOUT_S = 15.0
RABBITMQCTL_TIMEOUT_S = 15.0
# The text output shows this many of the latest fencing events; JSON has them all.
FENCE_EVENTS_SHOWN = 5

VIP_TYPES = frozenset({"IPaddr2", "IPaddr"})
GALERA_TYPES = frozenset({"galera"})
RABBITMQ_TYPES = frozenset({"rabbitmq", "rabbitmq-cluster", "rabbitmq-server-ha"})
PROXY_TYPES = frozenset({"haproxy"})
# The services' cache (ocf:stackha:memcached, and TripleO's and the HA Guide's systemd:memcached):
# no OpenStack API, though our provider and systemd run it.
CACHE_TYPES = frozenset({"memcached"})
# OCF providers whose agents run OpenStack services (ours and openstack-resource-agents').
API_PROVIDERS = frozenset({"stackha", "openstack"})
# How our rabbitmq agent's monitor words a partition (and what pause_minority leads to).
PARTITION_WORDS = re.compile(r"partition|minority", re.IGNORECASE)


class StatusError(Exception):
    """The cluster's state cannot be read; the message says why."""


# -- the CIB's configuration ---------------------------------------------------------------


def parse_configuration(xml_text: str) -> Configuration:
    """Parse the CIB's ``<configuration>`` (or a whole ``<cib>``); raises StatusError."""
    try:
        return model.parse_configuration(xml_text)
    except model.CibError as err:
        raise StatusError(f"cibadmin printed {err}") from None


# -- what stackha status shows (its JSON is these classes, field for field) ----------------


@dataclass(frozen=True)
class Cluster:
    name: Optional[str]
    dc: Optional[str]
    quorate: bool
    # Each node in exactly one list, as crm_mon's node list words it.
    online: tuple[str, ...]
    standby: tuple[str, ...]
    maintenance: tuple[str, ...]
    pending: tuple[str, ...]
    offline: tuple[str, ...]
    unclean: tuple[str, ...]


@dataclass(frozen=True)
class Vip:
    id: str
    agent: str
    address: Optional[str]
    # The node holding it; more than one is a fault (Pacemaker will stop it everywhere).
    held_by: tuple[str, ...]
    failed: bool


@dataclass(frozen=True)
class Service:
    id: str
    resource: str
    agent: str
    # api, proxy or other
    kind: str
    serving: tuple[str, ...]
    # Clones only: the cluster's nodes (and any node it ran or failed on) not serving it.
    stopped_on: tuple[str, ...]
    # An instance crm_mon marks FAILED, or a failed action recorded there.
    failed_on: tuple[str, ...]


@dataclass(frozen=True)
class GaleraNode:
    node: str
    # Promoted, Unpromoted or Stopped
    role: str
    failed: bool
    # The node attributes the agent publishes; None when unset (or the node is offline).
    position: Optional[str]
    safe_to_bootstrap: Optional[bool]
    primary: Optional[str]
    promotion_score: Optional[str]


@dataclass(frozen=True)
class PrimaryComponent:
    uuid: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Galera:
    id: str
    resource: str
    agent: str
    nodes: tuple[GaleraNode, ...]
    # Nodes grouped by their <rsc>-primary UUID, largest first; more than one is a fault.
    primary_components: tuple[PrimaryComponent, ...]


@dataclass(frozen=True)
class RabbitMember:
    node: str
    erlang_node: Optional[str]


@dataclass(frozen=True)
class PartitionReport:
    node: str
    reason: str


@dataclass(frozen=True)
class BrokerView:
    """``rabbitmqctl cluster_status`` on this node; ``known`` False when it did not answer."""

    seen_from: str
    known: bool
    running_nodes: tuple[str, ...] = ()
    partitions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: Optional[str] = None


@dataclass(frozen=True)
class RabbitMQ:
    id: str
    resource: str
    agent: str
    members: tuple[RabbitMember, ...]
    stopped_on: tuple[str, ...]
    failed_on: tuple[str, ...]
    partition_reports: tuple[PartitionReport, ...]
    broker_view: Optional[BrokerView]


@dataclass(frozen=True)
class FenceDevice:
    id: str
    agent: str
    running_on: tuple[str, ...]
    failed: bool
    targets: tuple[str, ...]
    # pcmk_host_list, pcmk_host_map, both ("pcmk_host_list+pcmk_host_map"), or dynamic
    # (neither set: Pacemaker asks the device which nodes it can fence)
    targets_from: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Fencing:
    enabled: Optional[bool]
    devices: tuple[FenceDevice, ...]
    levels: tuple[FencingLevel, ...]
    # Latest first, as the fencer keeps them.
    history: tuple[crm_mon.FenceEvent, ...]
    history_error: Optional[int]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class FailedAction:
    resource: str
    operation: str
    interval_ms: Optional[int]
    node: str
    exit_status: str
    exit_code: int
    exit_reason: str
    status: str
    last_rc_change: Optional[str]
    op_key: str


@dataclass(frozen=True)
class OpenStackStatus:
    cluster: Cluster
    vips: tuple[Vip, ...]
    services: tuple[Service, ...]
    galera: tuple[Galera, ...]
    rabbitmq: tuple[RabbitMQ, ...]
    fencing: Fencing
    failures: tuple[FailedAction, ...]


# -- judgement -----------------------------------------------------------------------------


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def kind_of(agent: str) -> str:
    """What an agent (``standard:provider:type``) runs: vip, galera, rabbitmq, fence, proxy,
    cache, api or other."""
    standard, _, rest = agent.partition(":")
    provider, _, type_ = rest.partition(":") if standard == "ocf" else ("", "", rest)
    if standard == "stonith":
        return "fence"
    if type_ in VIP_TYPES:
        return "vip"
    if type_ in GALERA_TYPES:
        return "galera"
    if type_ in RABBITMQ_TYPES:
        return "rabbitmq"
    if type_ in PROXY_TYPES:
        return "proxy"
    if type_ in CACHE_TYPES:
        return "cache"
    if standard == "systemd" or (standard == "ocf" and provider in API_PROVIDERS):
        return "api"
    return "other"


@dataclass(frozen=True)
class _Unit:
    """A primitive and every instance of it: a clone's, or the primitive alone."""

    resource: str
    clone: Optional[str]
    agent: str
    instances: tuple[crm_mon.ResourceState, ...]

    @property
    def id(self) -> str:
        return self.clone or self.resource

    @property
    def kind(self) -> str:
        return kind_of(self.agent)

    def active_on(self) -> tuple[str, ...]:
        return _unique(n for r in self.instances if r.active for n in r.nodes)

    def failed_instances_on(self) -> tuple[str, ...]:
        return _unique(n for r in self.instances if r.failed for n in r.nodes)


def _units(cluster: crm_mon.ClusterStatus) -> list[_Unit]:
    grouped: dict[tuple[Optional[str], str], list[crm_mon.ResourceState]] = {}
    for resource in cluster.resources:
        grouped.setdefault((resource.clone, resource.primitive), []).append(resource)
    return [
        _Unit(resource=primitive, clone=clone, agent=states[0].agent, instances=tuple(states))
        for (clone, primitive), states in grouped.items()
    ]


class _Judge:
    """Judges one cluster's state: where things run, and where they should but do not."""

    def __init__(self, cluster: crm_mon.ClusterStatus, configuration: Configuration) -> None:
        self.cluster = cluster
        self.configuration = configuration
        self.order = {node.name: index for index, node in enumerate(cluster.nodes)}

    def sorted_nodes(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(_unique(names), key=lambda n: (self.order.get(n, len(self.order)), n)))

    def failures_of(self, unit: _Unit) -> list[crm_mon.Failure]:
        return [f for f in self.cluster.failures if f.resource == unit.resource]

    def failed_on(self, unit: _Unit) -> tuple[str, ...]:
        recorded = (f.node for f in self.failures_of(unit))
        return self.sorted_nodes([*unit.failed_instances_on(), *recorded])

    def parameters(self, unit: _Unit) -> Mapping[str, str]:
        resource = self.configuration.resources.get(unit.resource)
        return resource.params if resource is not None else {}

    def allowed_members(self, unit: _Unit) -> list[str]:
        """The cluster's members (a pacemaker_remote compute node runs no API) the location
        constraints let ``unit`` run on. A member the CIB does not list, or a rule that
        cannot be evaluated offline (a date), leaves the node in."""
        members = [n.name for n in self.cluster.nodes if n.type == "member"]
        # The primitive's id: its group's and clone's constraints count too.
        allowed = self.configuration.allowed_nodes(unit.resource)
        if allowed is None:
            return members
        listed = set(self.configuration.node_names)
        return [n for n in members if n in allowed or n not in listed]

    def stopped_on(self, unit: _Unit) -> tuple[str, ...]:
        """A clone's stopped nodes: crm_mon lists stopped instances without a node, so these
        are the members it may run on while fewer than clone-max instances run (none when
        the configuration stops it), and any node it ran or failed on, less those serving
        it."""
        if unit.clone is None:
            return ()
        serving = set(unit.active_on())
        configuration = self.configuration
        clone_max = configuration.meta_number(unit.resource, ("clone-max",), 0)
        candidates = []
        if not (
            configuration.stops_all_resources
            or configuration.is_stopped_by_configuration(unit.resource)
            or 0 < clone_max <= len(serving)
        ):
            candidates = self.allowed_members(unit)
        candidates += [f.node for f in self.failures_of(unit)]
        return self.sorted_nodes(n for n in candidates if n not in serving)

    def cluster_summary(self) -> Cluster:
        states: dict[str, list[str]] = {
            s: [] for s in ("online", "standby", "maintenance", "pending", "offline", "unclean")
        }
        for node in self.cluster.nodes:
            if node.unclean:
                state = "unclean"
            elif node.pending:
                state = "pending"
            elif not node.online:
                state = "offline"
            elif node.standby:
                state = "standby"
            elif node.maintenance:
                state = "maintenance"
            else:
                state = "online"
            states[state].append(node.name)
        return Cluster(
            name=self.configuration.cluster_name,
            dc=self.cluster.dc,
            quorate=self.cluster.has_quorum,
            online=tuple(states["online"]),
            standby=tuple(states["standby"]),
            maintenance=tuple(states["maintenance"]),
            pending=tuple(states["pending"]),
            offline=tuple(states["offline"]),
            unclean=tuple(states["unclean"]),
        )

    def vip(self, unit: _Unit) -> Vip:
        return Vip(
            id=unit.id,
            agent=unit.agent,
            address=self.parameters(unit).get("ip"),
            held_by=self.sorted_nodes(unit.active_on()),
            failed=bool(unit.failed_instances_on()),
        )

    def service(self, unit: _Unit) -> Service:
        return Service(
            id=unit.id,
            resource=unit.resource,
            agent=unit.agent,
            kind=unit.kind,
            serving=self.sorted_nodes(unit.active_on()),
            stopped_on=self.stopped_on(unit),
            failed_on=self.failed_on(unit),
        )

    def galera(self, unit: _Unit) -> Galera:
        rsc = unit.resource
        roles = {n: r for r in unit.instances if r.active for n in r.nodes}
        recorded = {f.node for f in self.failures_of(unit)}
        nodes = []
        for node in self.sorted_nodes([*self.allowed_members(unit), *roles, *recorded]):
            instance = roles.get(node)
            safe = self.cluster.attribute(node, f"{rsc}-safe-to-bootstrap")
            nodes.append(
                GaleraNode(
                    node=node,
                    role=instance.role if instance else "Stopped",
                    failed=instance.failed if instance else node in recorded,
                    # ocf:heartbeat:galera publishes the seqno alone, as -last-committed.
                    position=self.cluster.attribute(node, f"{rsc}-position")
                    or self.cluster.attribute(node, f"{rsc}-last-committed"),
                    safe_to_bootstrap=None if safe is None else safe == "1",
                    primary=self.cluster.attribute(node, f"{rsc}-primary"),
                    promotion_score=self.cluster.attribute(node, f"master-{rsc}"),
                )
            )
        by_uuid: dict[str, list[str]] = {}
        for entry in nodes:
            if entry.primary:
                by_uuid.setdefault(entry.primary, []).append(entry.node)
        components = sorted(by_uuid.items(), key=lambda item: (-len(item[1]), item[0]))
        return Galera(
            id=unit.id,
            resource=rsc,
            agent=unit.agent,
            nodes=tuple(nodes),
            primary_components=tuple(PrimaryComponent(u, tuple(n)) for u, n in components),
        )

    def rabbitmq(self, unit: _Unit, broker_view: Optional[BrokerView]) -> RabbitMQ:
        serving = self.sorted_nodes(unit.active_on())
        return RabbitMQ(
            id=unit.id,
            resource=unit.resource,
            agent=unit.agent,
            members=tuple(
                RabbitMember(n, self.cluster.attribute(n, f"{unit.resource}-node")) for n in serving
            ),
            stopped_on=self.stopped_on(unit),
            failed_on=self.failed_on(unit),
            partition_reports=tuple(
                PartitionReport(f.node, f.exit_reason)
                for f in self.failures_of(unit)
                if PARTITION_WORDS.search(f.exit_reason)
            ),
            broker_view=broker_view,
        )

    def fence_device(self, unit: _Unit) -> FenceDevice:
        parameters = self.parameters(unit)
        host_list = model.host_list_targets(parameters)
        host_map = model.host_map_targets(parameters)
        sources = [
            name
            for name, targets in (("pcmk_host_list", host_list), ("pcmk_host_map", host_map))
            if targets
        ]
        targets = _unique([*host_list, *host_map])
        running_on = self.sorted_nodes(unit.active_on())
        members = {n.name for n in self.cluster.nodes if n.type == "member"}
        # A device that fences every node (a PDU) runs on one of them whatever one does.
        can_run_elsewhere = bool(members - set(targets))
        warnings = tuple(
            f"runs on {node}, which it fences (pcs constraint location {unit.id} avoids {node})"
            for node in running_on
            if node in targets and can_run_elsewhere
        )
        return FenceDevice(
            id=unit.id,
            agent=unit.agent,
            running_on=running_on,
            failed=bool(unit.failed_instances_on()),
            targets=targets,
            targets_from="+".join(sources) or "dynamic",
            warnings=warnings,
        )

    def fencing(self, devices: Sequence[FenceDevice]) -> Fencing:
        warnings = []
        if self.cluster.stonith_enabled is False:
            warnings.append("stonith-enabled is false: no node will be fenced")
        if not devices:
            warnings.append("no fence device is configured")
        elif all(d.targets_from != "dynamic" for d in devices):
            covered = {t for d in devices for t in d.targets}
            uncovered = [
                n.name for n in self.cluster.nodes if n.type == "member" and n.name not in covered
            ]
            if uncovered:
                warnings.append(f"no fence device fences {' '.join(uncovered)}")
        return Fencing(
            enabled=self.cluster.stonith_enabled,
            devices=tuple(devices),
            levels=tuple(
                sorted(self.configuration.fencing_levels, key=lambda lv: (lv.target, lv.index))
            ),
            history=self.cluster.fence_history,
            history_error=self.cluster.fence_history_error,
            warnings=tuple(warnings),
        )


def summarise(
    cluster: crm_mon.ClusterStatus,
    configuration: Configuration,
    broker_view: Optional[BrokerView] = None,
) -> OpenStackStatus:
    """The cluster per OpenStack concept. ``broker_view``: this node's rabbitmqctl's answer,
    shown with the RabbitMQ clone running here."""
    judge = _Judge(cluster, configuration)
    units = _units(cluster)
    broker_unit = _broker_unit(cluster, broker_view.seen_from) if broker_view else None
    return OpenStackStatus(
        cluster=judge.cluster_summary(),
        vips=tuple(judge.vip(u) for u in units if u.kind == "vip"),
        services=tuple(
            judge.service(u) for u in units if u.kind in ("api", "proxy", "cache", "other")
        ),
        galera=tuple(judge.galera(u) for u in units if u.kind == "galera"),
        rabbitmq=tuple(
            judge.rabbitmq(u, broker_view if broker_unit == u else None)
            for u in units
            if u.kind == "rabbitmq"
        ),
        fencing=judge.fencing([judge.fence_device(u) for u in units if u.kind == "fence"]),
        failures=tuple(
            FailedAction(
                resource=f.resource,
                operation=f.operation,
                interval_ms=f.interval_ms,
                node=f.node,
                exit_status=f.exit_status,
                exit_code=f.exit_code,
                exit_reason=f.exit_reason,
                status=f.status,
                last_rc_change=f.last_rc_change,
                op_key=f.op_key,
            )
            for f in cluster.failures
        ),
    )


def as_json(status: OpenStackStatus) -> dict[str, object]:
    """The status as one JSON-ready object (documented in docs/status.md)."""
    return asdict(status)


# -- gathering -----------------------------------------------------------------------------


def _same_node(name: str, local_node: str) -> bool:
    # Pacemaker's node name is normally the uname; either may be the short or the long form.
    return name == local_node or name.split(".", 1)[0] == local_node.split(".", 1)[0]


def _broker_unit(cluster: crm_mon.ClusterStatus, local_node: str) -> Optional[_Unit]:
    """The RabbitMQ clone that runs on ``local_node``, if any."""
    for unit in _units(cluster):
        if unit.kind == "rabbitmq" and any(_same_node(n, local_node) for n in unit.active_on()):
            return unit
    return None


def ask_broker(
    runner: Runner, node: str, erlang_node: Optional[str], timeout: float = RABBITMQCTL_TIMEOUT_S
) -> BrokerView:
    """``rabbitmqctl cluster_status`` of the broker on this node (``erlang_node``, as the agent
    published it, else rabbitmqctl's default); never raises: ``known`` says whether it
    answered."""
    target = ["-n", erlang_node] if erlang_node else []
    argv = [RABBITMQCTL, *target, "-q", "cluster_status", "--formatter", "json"]
    try:
        result = runner.run(argv, timeout=timeout)
    except CommandError as err:
        return BrokerView(seen_from=node, known=False, error=str(err))
    if not result.ok:
        why = result.output_line() or f"exit {result.returncode}"
        return BrokerView(seen_from=node, known=False, error=f"cluster_status failed: {why}")
    try:
        parsed = rabbitmq.parse_cluster_status(result.stdout)
    except rabbitmq.RabbitError as err:
        return BrokerView(seen_from=node, known=False, error=str(err))
    return BrokerView(
        seen_from=node,
        known=True,
        running_nodes=parsed.running,
        partitions=dict(parsed.partitions),
    )


def query_configuration(runner: Runner, timeout: float = TIMEOUT_S) -> Configuration:
    """The CIB's configuration section, parsed; raises StatusError."""
    # One query for the VIPs' and fence devices' parameters, the fencing levels and the
    # cluster's name. --scope fencing-topology would fail (exit 105) without any level.
    try:
        text = cibadmin.query(runner, scope="configuration", timeout=timeout)
    except CommandError as err:  # CibadminError: cibadmin's own words
        raise StatusError(f"cannot read the CIB: {err}") from err
    return parse_configuration(text)


def gather(
    runner: Runner, local_node: Optional[str] = None, timeout: float = TIMEOUT_S
) -> OpenStackStatus:
    """Read the cluster's state (crm_mon, cibadmin, and rabbitmqctl when ``local_node`` — this
    node's Pacemaker name — runs RabbitMQ) and judge it. Raises StatusError when crm_mon or
    cibadmin cannot run or cannot reach the cluster."""
    try:
        cluster = crm_mon.detailed_status(runner, timeout=timeout)
    except CommandNotFound as err:
        raise StatusError(f"{err}: is Pacemaker installed?") from err
    except CommandError as err:
        raise StatusError(f"cannot reach the cluster: {err}") from err
    except ET.ParseError as err:
        raise StatusError(f"crm_mon printed no XML: {err}") from err
    configuration = query_configuration(runner, timeout=timeout)
    broker_view = None
    unit = _broker_unit(cluster, local_node) if local_node else None
    if unit is not None:
        here = next(n for n in unit.active_on() if _same_node(n, local_node or ""))
        erlang_node = cluster.attribute(here, f"{unit.resource}-node")
        broker_view = ask_broker(runner, here, erlang_node)
    return summarise(cluster, configuration, broker_view)


# -- text ----------------------------------------------------------------------------------


def _columns(rows: Sequence[Sequence[str]], indent: str = "  ", first_width: int = 0) -> list[str]:
    """Rows as aligned columns, two spaces apart; the last column is not padded. The first
    is at least ``first_width`` wide, to line up with another section."""
    if not rows:
        return []
    width = max(len(row) for row in rows)
    widths = [
        max((len(row[i]) for row in rows if i < len(row) - 1), default=0) for i in range(width)
    ]
    widths[0] = max(widths[0], first_width)
    lines = []
    for row in rows:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _short_uuid(uuid: str) -> str:
    return f"{uuid[:8]}..." if len(uuid) > 11 else uuid


def _short_position(position: str) -> str:
    uuid, sep, seqno = position.rpartition(":")
    return f"{_short_uuid(uuid)}:{seqno}" if sep else position


def _nodes(names: Sequence[str]) -> str:
    return " ".join(names) or "-"


def _failure_reason(failure: FailedAction) -> str:
    # An action that timed out or could not run has no exit reason, and exit status "error".
    if failure.exit_reason:
        return failure.exit_reason
    if failure.status not in ("complete", ""):
        return failure.status
    return failure.exit_status


def _stopped(
    status: OpenStackStatus, resource: str, stopped_on: Sequence[str], with_reason: bool = True
) -> str:
    """``node3 (failed: start: reason), node4``: each stopped node, and why when it failed."""
    shown = []
    for node in stopped_on:
        found = [f for f in status.failures if f.resource == resource and f.node == node]
        if not found:
            shown.append(node)
        elif with_reason:
            shown.append(f"{node} (failed: {found[-1].operation}: {_failure_reason(found[-1])})")
        else:
            shown.append(f"{node} (failed)")
    return ", ".join(shown)


def _failed_while_serving(failed_on: Sequence[str], serving: Sequence[str]) -> str:
    """Nodes where crm_mon marks a running instance FAILED (a stop failed, say)."""
    return " ".join(n for n in failed_on if n in serving)


def _cluster_line(cluster: Cluster) -> str:
    name = f"cluster {cluster.name}" if cluster.name else "cluster"
    dc = f"DC {cluster.dc}" if cluster.dc else "no DC"
    quorum = "quorate" if cluster.quorate else "NO QUORUM"
    parts = [f"online {_nodes(cluster.online)}"]
    for label, names in (
        ("standby", cluster.standby),
        ("maintenance", cluster.maintenance),
        ("pending", cluster.pending),
        ("OFFLINE", cluster.offline),
        ("UNCLEAN", cluster.unclean),
    ):
        if names:
            parts.append(f"{label} {_nodes(names)}")
    return f"{name}: {dc}, {quorum}; " + "; ".join(parts)


def _name_width(status: OpenStackStatus) -> int:
    """VIPs and services line up under one another."""
    names = [v.id for v in status.vips] + [s.resource for s in status.services]
    return max((len(n) for n in names), default=0)


def _vip_lines(status: OpenStackStatus) -> list[str]:
    rows = []
    for vip in status.vips:
        if not vip.held_by:
            where = "stopped"
        elif len(vip.held_by) > 1:
            where = f"on {_nodes(vip.held_by)} (ACTIVE ON {len(vip.held_by)} NODES)"
        else:
            where = f"on {vip.held_by[0]}"
        if vip.failed:
            where = f"FAILED {where}"
        rows.append([vip.id, vip.address or "?", where])
    return ["VIPs", *_columns(rows, first_width=_name_width(status))] if rows else []


def _service_lines(status: OpenStackStatus) -> list[str]:
    lines = []
    for title, kinds in (("APIs", ("api",)), ("Other services", ("proxy", "cache", "other"))):
        rows = []
        for service in (s for s in status.services if s.kind in kinds):
            notes = []
            if service.stopped_on:
                notes.append(f"stopped on {_stopped(status, service.resource, service.stopped_on)}")
            failed = _failed_while_serving(service.failed_on, service.serving)
            if failed:
                notes.append(f"FAILED on {failed}")
            serving = service.serving or service.stopped_on
            rows.append(
                [service.resource, _nodes(service.serving) if serving else "stopped", *notes]
            )
        if rows:
            lines += [title, *_columns(rows, first_width=_name_width(status))]
    return lines


def _galera_lines(status: OpenStackStatus) -> list[str]:
    lines = []
    for galera in status.galera:
        components = galera.primary_components
        if not components:
            summary = "no Primary Component"
        elif len(components) == 1:
            summary = (
                f"Primary Component: {_nodes(components[0].nodes)} "
                f"(uuid {_short_uuid(components[0].uuid)})"
            )
        else:
            summary = "Primary Components DISAGREE: " + ", ".join(
                f"{_nodes(c.nodes)} (uuid {_short_uuid(c.uuid)})" for c in components
            )
        lines.append(f"Galera ({galera.id})  {summary}")
        rows = []
        for entry in galera.nodes:
            safe = entry.safe_to_bootstrap
            rows.append(
                [
                    entry.node,
                    f"{entry.role} FAILED" if entry.failed else entry.role,
                    f"position {_short_position(entry.position) if entry.position else '-'}",
                    f"safe_to_bootstrap {'-' if safe is None else int(safe)}",
                    f"score {entry.promotion_score or '-'}",
                    "" if entry.node in status.cluster.online else _node_state(status, entry.node),
                ]
            )
        lines += _columns(rows)
    return lines


def _node_state(status: OpenStackStatus, node: str) -> str:
    cluster = status.cluster
    for label, names in (
        ("(standby)", cluster.standby),
        ("(maintenance)", cluster.maintenance),
        ("(node pending)", cluster.pending),
        ("(node OFFLINE)", cluster.offline),
        ("(node UNCLEAN)", cluster.unclean),
    ):
        if node in names:
            return label
    return ""


def _broker_line(view: BrokerView) -> str:
    if not view.known:
        return f"on {view.seen_from}: unknown ({view.error})"
    partitions = "; ".join(
        f"{node} cut off from {' '.join(others)}" for node, others in view.partitions.items()
    )
    return (
        f"on {view.seen_from}: running {_nodes(view.running_nodes)}; "
        f"partitions: {partitions or 'none'}"
    )


def _rabbitmq_lines(status: OpenStackStatus) -> list[str]:
    lines = []
    for broker in status.rabbitmq:
        members = "  ".join(
            f"{m.node} ({m.erlang_node})" if m.erlang_node else m.node for m in broker.members
        )
        rows = [["members", members or "none"]]
        if broker.stopped_on:
            # The reasons of partition reports come on their own line.
            stopped = _stopped(status, broker.resource, broker.stopped_on, with_reason=False)
            rows.append(["stopped on", stopped])
        failed = _failed_while_serving(broker.failed_on, [m.node for m in broker.members])
        if failed:
            rows.append(["FAILED on", failed])
        reports = "; ".join(f"{r.node}: {r.reason}" for r in broker.partition_reports)
        rows.append(["partitions", reports or "none reported by Pacemaker"])
        if broker.broker_view is not None:
            rows.append(["rabbitmqctl", _broker_line(broker.broker_view)])
        lines += [f"RabbitMQ ({broker.id})", *_columns(rows)]
    return lines


def _fence_event_row(event: crm_mon.FenceEvent) -> list[str]:
    row = [
        event.completed or "in progress",
        event.action,
        event.target,
        event.status,
        f"delegate {event.delegate or '-'}",
        f"origin {event.origin}",
    ]
    return [*row, event.exit_reason] if event.exit_reason else row


def _fencing_lines(status: OpenStackStatus) -> list[str]:
    fencing = status.fencing
    title = "Fencing" if fencing.enabled is not False else "Fencing DISABLED"
    lines = [title]
    rows = []
    for device in fencing.devices:
        if device.running_on:
            where = f"on {_nodes(device.running_on)}"
        else:
            where = "stopped"
        if device.failed:
            where = f"FAILED {where}"
        fences = (
            f"fences {_nodes(device.targets)}" if device.targets else "fences what the device lists"
        )
        rows.append([device.id, device.agent.partition(":")[2], where, fences])
    lines += _columns(rows)
    for device in fencing.devices:
        lines += [f"  WARNING {device.id} {w}" for w in device.warnings]
    lines += [f"  WARNING {w}" for w in fencing.warnings]
    targets = _unique(level.target for level in fencing.levels)
    level_rows: list[list[str]] = []
    for target in targets:
        steps = ", ".join(
            f"{level.index} {'+'.join(level.devices)}"
            for level in fencing.levels
            if level.target == target
        )
        level_rows.append(["levels" if not level_rows else "", f"{target}: {steps}"])
    lines += _columns(level_rows)
    if fencing.history_error is not None:
        lines.append(f"  history  unavailable (crm_mon: fencer error {fencing.history_error})")
    elif fencing.history:
        shown = fencing.history[:FENCE_EVENTS_SHOWN]
        more = len(fencing.history) - len(shown)
        lines.append(
            f"  history (latest {len(shown)} of {len(fencing.history)})" if more else "  history"
        )
        lines += _columns([_fence_event_row(e) for e in shown], indent="    ")
    else:
        lines.append("  history  none")
    return lines


def _failure_lines(status: OpenStackStatus) -> list[str]:
    rows = []
    for failure in status.failures:
        operation = failure.operation
        if failure.interval_ms:
            operation += f" ({failure.interval_ms // 1000}s)"
        outcome = f"{failure.exit_status} ({failure.exit_code})"
        if failure.exit_reason or failure.status not in ("complete", ""):
            outcome += f": {_failure_reason(failure)}"
        rows.append(
            [
                failure.resource,
                operation,
                f"on {failure.node}",
                failure.last_rc_change or "",
                outcome,
            ]
        )
    return ["Failed actions", *_columns(rows)] if rows else []


def render_text(status: OpenStackStatus) -> str:
    """The status as compact, aligned text, one section per OpenStack concept."""
    lines = [_cluster_line(status.cluster)]
    lines += _vip_lines(status)
    lines += _service_lines(status)
    lines += _galera_lines(status)
    lines += _rabbitmq_lines(status)
    lines += _fencing_lines(status)
    lines += _failure_lines(status)
    return "\n".join(lines) + "\n"
