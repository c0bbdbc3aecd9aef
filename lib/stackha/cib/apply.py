"""``stackha cib apply``: a rendered CIB's configuration pushed to a running cluster.

Nothing is changed until every check has passed, and then in one transaction:

1. the new CIB's schema (``validate-with``) must be one the cluster's Pacemaker accepts:
   installed here, not newer than the DC's Pacemaker knows, not older than the cluster's CIB;
2. the configuration to push is the new CIB's, with what belongs to the cluster kept from the
   live CIB: the ``<nodes>`` (ids from Corosync, attributes set by the operator), the cluster
   properties Pacemaker maintains itself, and the sections stackha never renders (ACLs,
   alerts, tags) unless the new CIB has them;
3. ``crm_verify`` checks the result with the live status: an error refuses it;
4. the difference is shown, and the whole CIB is replaced with one ``cibadmin --replace``.

Why the whole CIB and not ``--scope configuration``: a configuration replace is validated
against the schema the ``<cib>`` element already names (Pacemaker 2.1.5 refuses Promoted roles
that way on a CIB at pacemaker-3.6), so a schema upgrade would be a second transaction
(``cibadmin --upgrade``, which needs ``--force`` and goes to the newest schema installed, not the
one rendered). A whole-CIB replace carries the new ``validate-with``, and also the
``admin_epoch``/``epoch``/``num_updates`` read at the start: the CIB manager refuses a
replacement older than its CIB ("Update was older than existing configuration"), so a change
made by anyone between our query and our push makes the push fail instead of being lost. The
status section pushed back is the one read, unchanged: had it changed since, ``num_updates``
would have moved and the push would be refused.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from lxml import etree

from stackha.cib.render import SCHEMA_DIR, SCHEMA_NAME
from stackha.pacemaker import cibadmin, crm_verify
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Optional, TextIO

    from stackha.runner import Runner

VERIFY_TIMEOUT_S = 60.0
# Pushes refused because only the status moved meanwhile, tried again on the fresh CIB.
STATUS_RETRIES = 5
# The newest schema each Pacemaker release accepts, from that release on (the schemas in
# ClusterLabs/pacemaker xml/ at each release tag; docs/reference §2.10). 2.0.0 brought
# pacemaker-3.0 (with the upgrade-2.10 transform); 2.0.1-2.0.4 added 3.1-3.4, which are not
# listed: such a DC is held to 3.0, older than any schema stackha renders anyway.
NEWEST_SCHEMA_BY_RELEASE = (
    ((2, 0, 0), (3, 0)),
    ((2, 0, 5), (3, 5)),
    ((2, 1, 0), (3, 7)),
    ((2, 1, 3), (3, 8)),
    ((2, 1, 5), (3, 9)),
    ((2, 1, 8), (3, 10)),
    ((3, 0, 0), (4, 0)),
)
# The sections stackha renders: the new CIB's copy replaces the cluster's, and one the new CIB
# does not have is removed.
RENDERED_SECTIONS = (
    "crm_config",
    "resources",
    "constraints",
    "fencing-topology",
    "rsc_defaults",
    "op_defaults",
)
# Every configuration has these (pacemaker-*.rng): an empty one stands in for a missing one.
REQUIRED_SECTIONS = ("crm_config", "nodes", "resources", "constraints")
# Section order does not matter to Pacemaker; a fixed one keeps the diff to real changes.
SECTION_ORDER = (
    "crm_config",
    "nodes",
    "resources",
    "constraints",
    "fencing-topology",
    "rsc_defaults",
    "op_defaults",
)
# Cluster properties the controller writes itself (cluster-name from corosync.conf).
MAINTAINED_PROPERTIES = (
    "dc-version",
    "cluster-infrastructure",
    "cluster-name",
    "have-watchdog",
    "last-lrm-refresh",
)
# Name/value sets: the order of their nvpairs means nothing, so the diff sorts them.
NVSETS = ("cluster_property_set", "instance_attributes", "meta_attributes", "utilization")
_QUOTE_ENTITY = {'"': "&quot;"}
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


class ApplyError(Exception):
    """The CIB was not applied; ``problems`` details ``reason``."""

    def __init__(self, reason: str, problems: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = list(problems)


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did: ``changed`` when the new configuration differs from the
    cluster's, ``pushed`` when it was applied, ``diff`` the difference (empty: none)."""

    changed: bool
    pushed: bool
    diff: str
    warnings: tuple[str, ...] = ()


def parse_cib(text: str, source: str) -> etree._Element:
    """A ``<cib>`` with a ``<configuration>`` from XML text; raises ApplyError."""
    # Blank text dropped so that what is pushed is indented the same wherever it came from.
    parser = etree.XMLParser(remove_blank_text=True)
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as err:
        raise ApplyError(f"{source} is not XML: {err}") from None
    if root.tag != "cib" or root.find("configuration") is None:
        raise ApplyError(f"{source} is not a CIB (<cib> with a <configuration>)")
    return root


def schema_version(name: str) -> Optional[tuple[int, int]]:
    """(3, 10) for "pacemaker-3.10"; None for anything else ("pacemaker-next", "none")."""
    match = SCHEMA_NAME.match(name or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def schema_name(version: tuple[int, int]) -> str:
    return f"pacemaker-{version[0]}.{version[1]}"


def property_value(cib: etree._Element, name: str) -> Optional[str]:
    """The value of cluster property ``name`` in the CIB, or None."""
    for nvpair in cib.iterfind("configuration/crm_config/cluster_property_set/nvpair"):
        if nvpair.get("name") == name:
            return nvpair.get("value")
    return None


def pacemaker_release(dc_version: str) -> Optional[tuple[int, int, int]]:
    """(2, 1, 5) for the ``dc-version`` "2.1.5-a3f44794f94" (or "2.1.5-8.el9-a3f44794f94")."""
    match = _RELEASE.match(dc_version or "")
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def newest_schema(release: tuple[int, int, int]) -> Optional[tuple[int, int]]:
    """The newest schema Pacemaker ``release`` accepts; None when the table cannot tell (a
    release newer than the last it knows, or older than the first)."""
    newest = None
    for first_release, schema in NEWEST_SCHEMA_BY_RELEASE:
        if release >= first_release:
            newest = schema
    if release > NEWEST_SCHEMA_BY_RELEASE[-1][0]:
        return None  # a later release may have added schemas this table does not know
    return newest


def _installed_schemas(schema_dir: Path) -> list[tuple[int, int]]:
    return sorted(
        version
        for path in schema_dir.glob("pacemaker-*.rng")
        for version in [schema_version(path.stem)]
        if version
    )


def schema_problem(
    new_validate_with: str, live_cib: etree._Element, schema_dir: Path = SCHEMA_DIR
) -> Optional[str]:
    """Why the cluster cannot take a CIB for schema ``new_validate_with``, or None.

    The schema must be one this cluster's DC accepts (its Pacemaker release from the
    ``dc-version`` property: no limit without one), be installed here in ``schema_dir`` (the
    CIB is checked here with it first), and not be older than the live CIB's. That last one is
    stackha's rule, not Pacemaker's: 2.1.5 takes a whole-CIB replace with an older
    ``validate-with``, but a CIB rendered for an older schema was rendered for another
    Pacemaker than this cluster's, and what the cluster runs may need the newer schema.
    """
    wanted = schema_version(new_validate_with)
    if wanted is None:
        return (
            f"the CIB's validate-with is {new_validate_with or 'missing'!r}: render it for a "
            "Pacemaker schema (pacemaker-MAJOR.MINOR)"
        )
    live = schema_version(live_cib.get("validate-with", ""))
    installed = _installed_schemas(schema_dir)
    release = pacemaker_release(property_value(live_cib, "dc-version") or "")
    oldest_known = NEWEST_SCHEMA_BY_RELEASE[0][0]
    if release is not None and release < oldest_known:
        return (
            f"this cluster's Pacemaker {_dotted(release)} is older than {_dotted(oldest_known)}, "
            "the oldest stackha knows the schemas of"
        )
    dc_newest = newest_schema(release) if release else None

    # The schema to suggest instead: the newest that passes all three checks.
    limits = [v for v in (dc_newest, installed[-1] if installed else None) if v is not None]
    suggestion = min(limits) if limits else None
    if suggestion is not None and live is not None and suggestion < live:
        suggestion = None
    advice = f": render it with --validate-with {schema_name(suggestion)}" if suggestion else ""

    if dc_newest is not None and release is not None and wanted > dc_newest:
        return (
            f"the CIB is for schema {new_validate_with}; this cluster's Pacemaker "
            f"{_dotted(release)} accepts up to {schema_name(dc_newest)}{advice}"
        )
    rng = schema_dir / f"{new_validate_with}.rng"
    if not rng.exists():
        return (
            f"the CIB is for schema {new_validate_with}, which the Pacemaker installed here "
            f"does not have ({rng} is missing){advice}"
        )
    if live is not None and wanted < live:
        return (
            f"the CIB is for schema {new_validate_with}, older than the cluster's "
            f"{schema_name(live)} (stackha never lowers a cluster's schema): render it with "
            f"--validate-with {schema_name(live)}"
        )
    return None


def _dotted(release: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in release)


def _configuration(cib: etree._Element) -> etree._Element:
    configuration = cib.find("configuration")
    if configuration is None:  # parse_cib lets no such CIB through
        raise ApplyError("a CIB without a <configuration>")
    return configuration


def _sections(cib: etree._Element) -> dict[str, etree._Element]:
    return {child.tag: child for child in _configuration(cib) if isinstance(child.tag, str)}


def _keep_maintained_properties(
    crm_config: etree._Element, live_crm_config: etree._Element
) -> None:
    set_here = {nvpair.get("name") for nvpair in crm_config.iterfind("cluster_property_set/nvpair")}
    kept: dict[str, list[etree._Element]] = {}
    for live_set in live_crm_config.iterfind("cluster_property_set"):
        for nvpair in live_set.iterfind("nvpair"):
            if nvpair.get("name") in MAINTAINED_PROPERTIES and nvpair.get("name") not in set_here:
                kept.setdefault(live_set.get("id", ""), []).append(copy.deepcopy(nvpair))
    for set_id, nvpairs in kept.items():
        # In the set they were in: the controller updates them there (cib-bootstrap-options),
        # and would add a second copy were they moved elsewhere.
        target = next(
            (s for s in crm_config.iterfind("cluster_property_set") if s.get("id") == set_id),
            None,
        )
        if target is None:
            target = etree.SubElement(crm_config, "cluster_property_set", id=set_id)
        target.extend(nvpairs)


def merged_cib(live_cib: etree._Element, new_cib: etree._Element) -> etree._Element:
    """The CIB to push: the live one (its version attributes and status as read) with the new
    CIB's configuration, less what belongs to the cluster (see the module's docstring), and
    ``validate-with`` raised to the new CIB's when that is newer."""
    merged = copy.deepcopy(live_cib)
    live = _sections(live_cib)
    new = _sections(new_cib)
    sections = {tag: s for tag, s in live.items() if tag not in RENDERED_SECTIONS}
    sections.update({tag: s for tag, s in new.items() if tag != "nodes"})
    configuration = etree.Element("configuration")
    ordered = [t for t in SECTION_ORDER if t in sections or t in REQUIRED_SECTIONS]
    ordered += [t for t in sections if t not in SECTION_ORDER]
    for tag in ordered:
        section = copy.deepcopy(sections[tag]) if tag in sections else etree.Element(tag)
        configuration.append(section)
        if tag == "crm_config" and "crm_config" in live:
            _keep_maintained_properties(section, live["crm_config"])
    merged.replace(_configuration(merged), configuration)

    new_schema = schema_version(new_cib.get("validate-with", ""))
    live_schema = schema_version(live_cib.get("validate-with", ""))
    if new_schema is not None and (live_schema is None or new_schema > live_schema):
        merged.set("validate-with", new_cib.get("validate-with", ""))
    return merged


def _canonical_lines(element: etree._Element, depth: int = 0) -> list[str]:
    indent = "  " * depth
    # id first (what a reader looks for), then the others by name: independent of the order
    # each tool happened to write them in.
    names = sorted((str(name) for name in element.attrib), key=lambda name: (name != "id", name))
    text = "".join(f' {name}="{escape(element.get(name, ""), _QUOTE_ENTITY)}"' for name in names)
    children = [child for child in element if isinstance(child.tag, str)]  # no comments
    if element.tag in NVSETS:
        children.sort(key=lambda c: (c.tag != "rule", c.get("name", ""), c.get("id", "")))
    if not children:
        return [f"{indent}<{element.tag}{text}/>"]
    lines = [f"{indent}<{element.tag}{text}>"]
    for child in children:
        lines += _canonical_lines(child, depth + 1)
    lines.append(f"{indent}</{element.tag}>")
    return lines


def _canonical_configuration(cib: etree._Element) -> list[str]:
    sections = sorted(
        (s for s in _configuration(cib) if isinstance(s.tag, str)),
        key=lambda s: (
            SECTION_ORDER.index(s.tag) if s.tag in SECTION_ORDER else len(SECTION_ORDER),
            s.tag,
        ),
    )
    lines = [f'<cib validate-with="{cib.get("validate-with", "")}">', "  <configuration>"]
    for section in sections:
        lines += _canonical_lines(section, 2)
    return [*lines, "  </configuration>", "</cib>"]


def configuration_diff(live_cib: etree._Element, merged: etree._Element) -> str:
    """A unified diff from the live CIB's configuration (and validate-with) to ``merged``'s,
    each printed canonically (attributes sorted, fixed indentation, sections in a fixed order,
    nvpairs by name, comments left out) so that it shows real changes only; "" when there
    are none."""
    lines = difflib.unified_diff(
        _canonical_configuration(live_cib),
        _canonical_configuration(merged),
        "cluster",
        "new",
        lineterm="",
    )
    text = "\n".join(lines)
    return text + "\n" if text else ""


def cib_text(cib: etree._Element) -> str:
    """The XML text pushed and checked for ``cib``."""
    return etree.tostring(cib, encoding="unicode", pretty_print=True)


def without_history(cib: etree._Element) -> etree._Element:
    """``cib`` without the resources' operation history (each node_state's ``lrm``): the new
    configuration is judged on the live membership, not on failures of the old one, which
    crm_verify reports as errors ("Unexpected result ... was recorded for start of haproxy")
    although no configuration could undo them."""
    copied = copy.deepcopy(cib)
    for history in copied.iterfind("status/node_state/lrm"):
        parent = history.getparent()
        assert parent is not None
        parent.remove(history)
    return copied


def verify(runner: Runner, cib: etree._Element) -> list[str]:
    """What ``crm_verify`` warns of in ``cib``; its errors raise ApplyError. Warnings alone
    are left to the operator, as crm_verify itself puts it."""
    try:
        findings = crm_verify.verify_xml(runner, cib_text(without_history(cib)), VERIFY_TIMEOUT_S)
    except CommandError as err:
        raise ApplyError(f"crm_verify could not check the new configuration: {err}") from err
    if findings.errors or (findings.returncode != 0 and not findings.warnings):
        raise ApplyError(
            "crm_verify finds errors in the new configuration; nothing was changed",
            list(findings.errors + findings.others)
            or [f"crm_verify exited {findings.returncode} without a message"],
        )
    return list(findings.warnings + findings.others)


def unknown_nodes(live_cib: etree._Element, new_cib: etree._Element) -> list[str]:
    """The nodes the new CIB names that the cluster does not have (they are not added)."""
    live = {node.get("uname") for node in live_cib.iterfind("configuration/nodes/node")}
    return [
        name
        for node in new_cib.iterfind("configuration/nodes/node")
        for name in [node.get("uname", "")]
        if name not in live
    ]


def apply(
    runner: Runner,
    new_cib_text: str,
    *,
    schema_dir: Path = SCHEMA_DIR,
    dry_run: bool = False,
    out: Optional[TextIO] = None,
    cib_file: Optional[str] = None,
) -> ApplyResult:
    """Push the configuration of ``new_cib_text`` to the cluster (or to the CIB file
    ``cib_file``), showing the warnings and the diff on ``out`` first; with ``dry_run``, or
    when nothing changes, nothing is pushed. Raises ApplyError, having changed nothing
    (unless the push itself timed out: its message says so)."""
    new_cib = parse_cib(new_cib_text, "the new CIB")
    live_cib = _query(runner, cib_file)
    problem = schema_problem(new_cib.get("validate-with", ""), live_cib, schema_dir)
    if problem:
        raise ApplyError(problem)

    merged = merged_cib(live_cib, new_cib)
    warnings = verify(runner, merged)
    missing = unknown_nodes(live_cib, new_cib)
    if missing:
        warnings.append(
            f"the new CIB names nodes this cluster does not have: {', '.join(missing)} "
            "(nodes come from the cluster: none is added)"
        )
    diff = configuration_diff(live_cib, merged)
    if out is not None:
        for warning in warnings:
            out.write(f"warning: {warning}\n")
        out.write(diff or "no changes\n")
    if dry_run or not diff:
        return ApplyResult(bool(diff), False, diff, tuple(warnings))

    # cibadmin refuses a CIB older than the live one (exit 103): what we push carries the
    # epochs we read, so a change made meanwhile is never overwritten. A busy cluster moves
    # num_updates (the status: operation results, node attributes) all the time; when only
    # that moved, the push is rebuilt on the fresh CIB — same configuration, same diff.
    for attempt in range(STATUS_RETRIES + 1):
        try:
            cibadmin.replace_cib(runner, cib_text(merged), cib_file=cib_file)
            break
        except cibadmin.CibChanged as err:
            fresh = _query(runner, cib_file)
            if attempt == STATUS_RETRIES or _configuration_epoch(fresh) != _configuration_epoch(
                live_cib
            ):
                raise ApplyError(
                    "the CIB changed while we were preparing: run apply again"
                ) from err
            live_cib = fresh
            merged = merged_cib(live_cib, new_cib)
        except CommandError as err:
            raise ApplyError(f"pushing the new CIB failed: {err}") from err
    return ApplyResult(True, True, diff, tuple(warnings))


def _query(runner: Runner, cib_file: Optional[str]) -> etree._Element:
    try:
        live_text = cibadmin.query(runner, cib_file=cib_file)
    except CommandError as err:
        raise ApplyError(f"cannot read the cluster's CIB: {err}") from err
    return parse_cib(live_text, "the cluster's CIB")


def _configuration_epoch(cib: etree._Element) -> tuple[str, str]:
    """(admin_epoch, epoch): what moves when the configuration changes (num_updates moves with
    the status)."""
    return cib.get("admin_epoch", ""), cib.get("epoch", "")
