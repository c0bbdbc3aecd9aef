"""``crm_mon``: the cluster's state, parsed from its XML output."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from stackha.runner import CommandError

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner


TOOL = "/usr/sbin/crm_mon"
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class NodeState:
    name: str
    online: bool
    standby: bool
    unclean: bool


@dataclass(frozen=True)
class ResourceState:
    id: str
    agent: str
    role: str
    active: bool
    failed: bool
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class ClusterStatus:
    dc: Optional[str]
    has_quorum: bool
    nodes: tuple[NodeState, ...]
    resources: tuple[ResourceState, ...]

    @property
    def online_nodes(self) -> tuple[str, ...]:
        return tuple(node.name for node in self.nodes if node.online)

    def instances(self, resource_id: str) -> tuple[ResourceState, ...]:
        """Every instance of a primitive (``id`` or, in a clone, ``id:N``)."""
        return tuple(r for r in self.resources if r.id.split(":", 1)[0] == resource_id)


def _true(value: Optional[str]) -> bool:
    return value == "true"


def parse_status(xml_text: str) -> ClusterStatus:
    """Parse ``crm_mon --output-as=xml``."""
    root = ET.fromstring(xml_text)
    dc = root.find("summary/current_dc")
    present = dc is not None and _true(dc.get("present"))
    nodes = tuple(
        NodeState(
            name=node.get("name", ""),
            online=_true(node.get("online")),
            standby=_true(node.get("standby")),
            unclean=_true(node.get("unclean")),
        )
        for node in root.iterfind("nodes/node")
    )
    resources = tuple(
        ResourceState(
            id=resource.get("id", ""),
            agent=resource.get("resource_agent", ""),
            role=resource.get("role", ""),
            active=_true(resource.get("active")),
            failed=_true(resource.get("failed")),
            nodes=tuple(n.get("name", "") for n in resource.iterfind("node")),
        )
        for resource in root.iter("resource")
    )
    return ClusterStatus(
        dc=dc.get("name") if present and dc is not None else None,
        has_quorum=present and dc is not None and _true(dc.get("with_quorum")),
        nodes=nodes,
        resources=resources,
    )


def status(runner: Runner, timeout: float = TIMEOUT_S) -> ClusterStatus:
    """The cluster's state now; raises CommandError when crm_mon cannot reach the cluster."""
    result = runner.run([TOOL, "--one-shot", "--inactive", "--output-as=xml"], timeout=timeout)
    if not result.ok:
        raise CommandError(f"crm_mon failed: {result.output_line()}", result)
    return parse_status(result.stdout)
