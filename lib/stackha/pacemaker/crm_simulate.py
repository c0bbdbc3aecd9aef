"""``crm_simulate``: events applied to a CIB file, one transition computed and simulated as
successful, and its XML output read — offline, no cluster needed.

Events and simulation are two calls: Pacemaker 3.0.0's ``--simulate --output-as=xml`` ends its
document after the injected events when any are given — no transition, no revised status
(docs/debian13.md) — while a simulation without events is whole on 3.0 as on 2.1.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from stackha.pacemaker.values import PROMOTED, STARTED, STOPPED, UNPROMOTED, is_true, normal_role
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from stackha.runner import Result, Runner

TOOL = "/usr/sbin/crm_simulate"
TIMEOUT_S = 60.0
# When one instance is in several roles on a node in one listing, the highest counts.
_ROLE_RANK = {STOPPED: 0, STARTED: 1, UNPROMOTED: 1, PROMOTED: 2}


class SimulationFailed(CommandError):
    """crm_simulate refused the input (an invalid CIB) or failed, or printed no result."""


@dataclass(frozen=True)
class SimulationRound:
    """What one crm_simulate --simulate reported."""

    transition: tuple[str, ...]  # the actions it executed (no pseudo-actions), readable
    fenced: tuple[str, ...]  # nodes it fenced
    online_nodes: tuple[str, ...]  # online, not standby, not in maintenance
    placement: Mapping[str, Mapping[str, str]]  # primitive id → node → role, afterwards


def parse_simulation(xml_text: str) -> SimulationRound:
    """Parse ``crm_simulate --simulate --output-as=xml`` (Pacemaker 2.1 output API 2.25);
    raises :class:`SimulationFailed` when it holds no revised cluster status."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise SimulationFailed(f"crm_simulate printed no XML: {err}") from None
    transition_element = root.find("transition")
    actions = list(transition_element) if transition_element is not None else []
    # Pseudo-actions change nothing, and Pacemaker 2.1.5 schedules a clone's start/running
    # pseudo-actions again in every transition while one of its instances is blocked: they
    # are left out, so such a cluster counts as settled.
    transition = tuple(
        " ".join([action.tag, *(f"{k}={v}" for k, v in action.attrib.items())])
        for action in actions
        if action.tag != "pseudo_action"
    )
    fenced = tuple(a.get("target", "") for a in actions if a.tag == "fencing_action")
    # Placement read from the status before the transition would judge the wrong cluster.
    status = root.find("revised_cluster_status")
    if status is None:
        raise SimulationFailed("crm_simulate printed no revised cluster status")
    online = tuple(
        node.get("name", "")
        for node in status.iterfind("nodes/node")
        if is_true(node.get("online"))
        and not is_true(node.get("standby"))
        and not is_true(node.get("maintenance"))
    )
    placement: dict[str, dict[str, str]] = {}
    for resource in status.iter("resource"):
        if is_true(resource.get("orphaned")):
            continue
        # Instances of an anonymous clone carry the primitive's id, a unique clone's "id:N".
        resource_id = resource.get("id", "").split(":", 1)[0]
        role = normal_role(resource.get("role"))
        on_nodes = placement.setdefault(resource_id, {})
        for node in resource.iterfind("node"):
            name = node.get("name", "")
            if _ROLE_RANK.get(role, 1) > _ROLE_RANK.get(on_nodes.get(name, STOPPED), 1):
                on_nodes[name] = role
    return SimulationRound(transition, fenced, online, placement)


@dataclass(frozen=True)
class Events:
    """What happens to the cluster before a transition is computed."""

    node_up: Sequence[str] = ()
    node_fail: Sequence[str] = ()
    # An empty status has no have-quorum: without it nothing starts ("no quorum").
    quorum: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.node_up or self.node_fail or self.quorum)


def events_argv(source: Path, target: Path, events: Events) -> list[str]:
    """crm_simulate applying events to ``source`` and saving the CIB, without simulating."""
    argv = [TOOL, "--xml-file", str(source), "--quiet", "--output-as=xml"]
    if events.quorum:
        argv += ["--quorum", "true"]
    for node in events.node_up:
        argv += ["--node-up", node]
    for node in events.node_fail:
        argv += ["--node-fail", node]
    return [*argv, "--save-output", str(target)]


def simulate_argv(source: Path, target: Path) -> list[str]:
    """crm_simulate computing one transition from ``source`` and saving the CIB after it."""
    return [
        TOOL,
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


def apply_events(
    runner: Runner, source: Path, target: Path, events: Events, timeout: float = TIMEOUT_S
) -> None:
    """Save ``source`` with ``events`` applied to ``target``; raises
    :class:`SimulationFailed` when crm_simulate refuses the CIB."""
    result = runner.run(events_argv(source, target, events), timeout=timeout)
    if not result.ok:
        raise _refused(result)


def simulate(
    runner: Runner,
    source: Path,
    target: Path,
    events: Events = Events(),
    timeout: float = TIMEOUT_S,
) -> SimulationRound:
    """One transition: crm_simulate computes it from ``source`` (after ``events``, applied
    by :func:`apply_events` to a file beside ``target``), simulates it as successful and
    saves the resulting CIB to ``target``. Raises :class:`SimulationFailed` when
    crm_simulate refuses the CIB or reports no result."""
    if not events.is_empty:
        applied = target.with_name(f"{target.stem}-events{target.suffix}")
        apply_events(runner, source, applied, events, timeout)
        source = applied
    result = runner.run(simulate_argv(source, target), timeout=timeout)
    if not result.ok:
        raise _refused(result)
    return parse_simulation(result.stdout)
