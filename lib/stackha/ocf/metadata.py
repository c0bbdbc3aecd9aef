"""OCF meta-data XML from an :class:`~stackha.ocf.spec.AgentSpec`.

Two forms, chosen by the OCF API version the caller says it speaks (``OCF_RA_VERSION_MAJOR`` and
``OCF_RA_VERSION_MINOR``, which the OCF specification defines for exactly this purpose and which
Pacemaker 2.1 sets to 1.1):

* OCF 1.1 (caller speaks 1.1 or newer): ``reloadable``, ``unique-group``, ``<deprecated>``,
  ``select`` content and the ``reload-agent`` action.
* OCF 1.0 (the caller says nothing, or 1.0): the form ``ra-api-1.dtd`` describes, with its
  DOCTYPE. Tools that predate 1.1 and set no version, such as resource-agents' ``ocf-tester``,
  validate against that DTD. 1.1-only constructs are left out or folded into the text
  (a select becomes a string whose description lists the values).

Built with the standard library's ElementTree, so every description is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Optional

from stackha.ocf.spec import AgentSpec, Parameter

# Action names ra-api-1.dtd enumerates; the 1.0 form leaves out any other.
DTD_ACTIONS = frozenset(
    "start stop recover monitor restart migrate_to migrate_from promote demote notify status "
    "reload meta-data usage methods validate-all".split()
)


def speaks_ocf_1_1(caller_version: Optional[tuple[int, int]]) -> bool:
    return caller_version is not None and caller_version >= (1, 1)


def _desc(parent: ET.Element, tag: str, text: str) -> None:
    element = ET.SubElement(parent, tag, lang="en")
    element.text = text


def _parameter(parent: ET.Element, parameter: Parameter, ocf_1_1: bool) -> None:
    attributes = {"name": parameter.name, "required": "1" if parameter.required else "0"}
    if ocf_1_1:
        if parameter.reloadable:
            attributes["reloadable"] = "1"
        if parameter.unique_group:
            attributes["unique-group"] = parameter.unique_group
    else:
        attributes["unique"] = "0"
    element = ET.SubElement(parent, "parameter", attributes)
    longdesc = parameter.longdesc
    shortdesc = parameter.shortdesc
    if ocf_1_1 and parameter.replaced_by:
        deprecated = ET.SubElement(element, "deprecated")
        ET.SubElement(deprecated, "replaced-with", name=parameter.replaced_by)
    elif parameter.replaced_by:
        shortdesc = f"{shortdesc} (deprecated: use {parameter.replaced_by})"
    if parameter.type == "select" and not ocf_1_1:
        longdesc = f"{longdesc} Allowed values: {', '.join(parameter.choices)}."
    _desc(element, "longdesc", longdesc)
    _desc(element, "shortdesc", shortdesc)
    content_type = parameter.type if ocf_1_1 or parameter.type != "select" else "string"
    content = ET.SubElement(element, "content", type=content_type)
    default = parameter.default_text()
    if default is not None:
        content.set("default", default)
    if content_type == "select":
        for choice in parameter.choices:
            ET.SubElement(content, "option", value=choice)


def render_metadata(spec: AgentSpec, caller_version: Optional[tuple[int, int]]) -> str:
    """The meta-data document for a caller that speaks ``caller_version`` of the OCF API."""
    ocf_1_1 = speaks_ocf_1_1(caller_version)
    root = ET.Element("resource-agent", name=spec.name, version=spec.version)
    ET.SubElement(root, "version").text = "1.1" if ocf_1_1 else "1.0"
    _desc(root, "longdesc", spec.longdesc)
    _desc(root, "shortdesc", spec.shortdesc)
    parameters = ET.SubElement(root, "parameters")
    for parameter in spec.parameters:
        _parameter(parameters, parameter, ocf_1_1)
    actions = ET.SubElement(root, "actions")
    for action in spec.actions:
        if not ocf_1_1 and action.name not in DTD_ACTIONS:
            continue
        attributes = {"name": action.name, "timeout": f"{action.timeout}s"}
        if action.interval is not None:
            attributes["interval"] = f"{action.interval}s"
        if action.depth is not None:
            attributes["depth"] = str(action.depth)
        if action.role:
            attributes["role"] = action.role
        ET.SubElement(actions, "action", attributes)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    doctype = "" if ocf_1_1 else '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">\n'
    return f'<?xml version="1.0"?>\n{doctype}{body}\n'
