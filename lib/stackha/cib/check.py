"""``stackha cib check``: a CIB is checked before it is ever applied, in three steps that each
catch what the one before cannot:

1. the RelaxNG schema its ``validate-with`` names, from the Pacemaker installed here (lxml):
   the element forms — a role name the schema does not know, a misplaced attribute;
2. ``crm_verify`` on the CIB with every node up and quorum (``crm_simulate --node-up``: on
   an empty status every node is unclean and crm_verify warns of that alone): references to
   resources that do not exist, invalid scores, option values Pacemaker refuses;
3. ``crm_simulate`` scenarios (:mod:`stackha.cib.simulate`): start-up and each node lost in
   turn, asserting the placement the configuration promises — a clone on every node, a VIP
   where what it is colocated with runs, every promotable instance promoted, dependent
   clones only where their dependencies run, no fence device on the node it fences.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from stackha.cib.model import CibError, parse_configuration
from stackha.cib.render import SCHEMA_DIR
from stackha.pacemaker import crm_simulate, crm_verify

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from stackha.runner import Runner


class CheckError(Exception):
    """The CIB cannot be checked at all (unreadable, not XML, no such schema here)."""


@dataclass
class Step:
    name: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_cib(text: str, source: str = "CIB") -> etree._Element:
    try:
        root = etree.fromstring(text.encode("utf-8"))
    except etree.XMLSyntaxError as err:
        raise CheckError(f"{source} is not XML: {err}") from None
    if root.tag != "cib" or root.find("configuration") is None:
        raise CheckError(f"{source} is not a CIB (<cib> with a <configuration>)")
    return root


def schema_problems(cib: etree._Element, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """What the RelaxNG schema named by ``validate-with`` finds wrong, one line each."""
    name = cib.get("validate-with", "")
    if not name:
        return ["the CIB has no validate-with: which schema it is for is unknown"]
    path = schema_dir / f"{name}.rng"
    if not path.exists():
        raise CheckError(
            f"the CIB is for schema {name}, which the Pacemaker installed here does not have "
            f"({path} is missing)"
        )
    schema = etree.RelaxNG(etree.parse(str(path)))
    document = etree.ElementTree(etree.fromstring(etree.tostring(cib)))
    if schema.validate(document):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


def verify_findings(
    runner: Runner, cib_path: Path, nodes: Sequence[str], workdir: Path
) -> tuple[list[str], list[str]]:
    """(problems, notes): what ``crm_verify`` says of the CIB with every node up, one line
    each. Its errors are problems; so is everything it says when it exits non-zero; warnings
    under exit 0 ("Blind faith: not fencing unseen nodes" with fencing off) are notes."""
    with_nodes = workdir / "nodes-up.xml"
    try:
        # --quorum: an empty status has none, and crm_verify would warn of that alone
        events = crm_simulate.Events(node_up=nodes, quorum=True)
        crm_simulate.apply_events(runner, cib_path, with_nodes, events)
    except crm_simulate.SimulationFailed as err:
        return [f"bringing the nodes up: {err}"], []
    findings = crm_verify.verify_xml(runner, with_nodes.read_text(encoding="utf-8"))
    if findings.returncode == 0:
        return list(findings.errors), list(findings.warnings + findings.others)
    lines = [*findings.errors, *findings.warnings, *findings.others]
    return lines or [f"crm_verify exited {findings.returncode}"], []


def check_cib(
    text: str,
    runner: Runner,
    source: str = "CIB",
    schema_dir: Path = SCHEMA_DIR,
    scenarios: bool = True,
) -> list[Step]:
    """Every step's findings; a step after a failed one is not run (its findings would be
    noise). Raises :class:`CheckError` when the CIB cannot be checked at all."""
    cib = parse_cib(text, source)
    try:
        # Every <node>, whatever its type: crm_verify is to see them all up.
        nodes = [node.name for node in parse_configuration(text).nodes]
    except CibError as err:  # what lxml read, the standard library's parser may not
        raise CheckError(f"{source}: {err}") from None
    steps = [Step(f"schema {cib.get('validate-with')}", schema_problems(cib, schema_dir))]
    if not steps[-1].ok:
        return steps
    if not nodes:
        steps.append(Step("nodes", ["the CIB has no <node> entries: nothing to simulate on"]))
        return steps
    with tempfile.TemporaryDirectory(prefix="stackha-cib-check-") as directory:
        workdir = Path(directory)
        cib_path = workdir / "cib.xml"
        cib_path.write_text(text, encoding="utf-8")
        problems, notes = verify_findings(runner, cib_path, nodes, workdir)
        steps.append(Step("crm_verify", problems, notes))
        if not steps[-1].ok or not scenarios:
            return steps
        from stackha.cib.simulate import run_scenarios

        for result in run_scenarios(cib_path, runner, workdir):
            steps.append(
                Step(f"crm_simulate: {result.name}", list(result.problems), list(result.notes))
            )
    return steps
