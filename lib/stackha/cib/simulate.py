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
checked against expectations derived from the configuration itself
(:mod:`stackha.cib.expectations`, on the configuration :mod:`stackha.cib.model` reads). Only
:mod:`stackha.pacemaker.crm_simulate` runs a program.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from stackha.cib.expectations import (
    check_configuration,
    check_placement,
    complete_placement,
    lost_node_was_fenced,
)
from stackha.cib.model import read_cib, read_configuration
from stackha.clock import SystemClock
from stackha.pacemaker.crm_simulate import Events, SimulationFailed, simulate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Optional

    from stackha.cib.model import Configuration
    from stackha.clock import Clock
    from stackha.runner import Runner

# A stable CIB settles in two rounds (one transition, then an empty one); a scenario still
# moving after this many is reported as not settling (a resource flapping between nodes).
MAX_ROUNDS = 10
# What our agents set with crm_attribute --promotion once an instance may be promoted; any
# positive value lets Pacemaker promote.
PROMOTION_SCORE = "100"


def promotion_attributes(configuration: Configuration) -> tuple[str, ...]:
    """The node attributes promotable clones' agents set (``crm_attribute --promotion``
    writes ``master-<primitive id>``): one per primitive inside a promotable clone."""
    names = []
    for resource in configuration.primitives():
        clone = configuration.clone_of(resource.id)
        if clone is not None and clone.promotable:
            names.append(f"master-{resource.id}")
    return tuple(names)


def inject_promotion_scores(cib: ET.Element, configuration: Configuration) -> None:
    """Give every member node the promotion score of every promotable clone, as a transient
    node attribute in the status section — what ``crm_attribute --promotion`` leaves there.

    crm_simulate has no option to inject a node attribute; a ``<node_state>`` holding only
    ``<transient_attributes>`` is enough, ``--node-up`` fills in the rest.
    """
    names = promotion_attributes(configuration)
    if not names:
        return
    status = cib.find("status")
    if status is None:
        status = ET.SubElement(cib, "status")
    for node in configuration.members:
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
    events: Events,
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
        last = simulate(runner, source, current, events)
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
    for node in events.node_fail:
        problems += lost_node_was_fenced(configuration, node, fenced, name)
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
    look with ``crm_simulate -x``). Raises :class:`~stackha.cib.model.CibError` for a file
    that is not a CIB; a CIB crm_simulate refuses is a problem of the start-up scenario."""
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
        Events(node_up=nodes, quorum=True),
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
                Events(node_fail=(node,)),
                clock=clock,
            )
        )
    return results
