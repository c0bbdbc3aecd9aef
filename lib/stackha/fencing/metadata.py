"""Fence-agent meta-data, in the form fence-agents' ``metadata.rng`` describes and
pacemaker-fenced, ``stonith_admin`` and pcs read."""

from __future__ import annotations

import xml.etree.ElementTree as ET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stackha.fencing.spec import FenceAgentSpec, FenceOption

# Actions that fence the node (the others read state or describe the agent).
ON = "on"


def _getopt(option: FenceOption) -> str:
    value = f"=[{option.metavar or option.name}]" if option.type != "boolean" else ""
    return (f"{option.short}, " if option.short else "") + option.long + value


def _parameter(parent: ET.Element, option: FenceOption, name: str, alias_of: str = "") -> None:
    attributes = {"name": name, "unique": "0", "required": "1" if option.required else "0"}
    if alias_of:
        attributes["deprecated"] = "1"
    elif option.aliases:
        attributes["obsoletes"] = option.aliases[0]
    element = ET.SubElement(parent, "parameter", attributes)
    ET.SubElement(element, "getopt", mixed=_getopt(option))
    content = ET.SubElement(element, "content", type=option.type)
    if option.default is not None and option.default != "":
        default = option.default
        if isinstance(default, bool):
            default = "1" if default else "0"
        elif isinstance(default, float) and default.is_integer():
            default = int(default)
        content.set("default", str(default))
    for choice in option.choices:
        ET.SubElement(content, "option", value=choice)
    shortdesc = ET.SubElement(element, "shortdesc", lang="en")
    shortdesc.text = option.shortdesc


def render_metadata(spec: FenceAgentSpec) -> str:
    root = ET.Element("resource-agent", name=spec.name, shortdesc=spec.shortdesc)
    ET.SubElement(root, "longdesc").text = spec.longdesc
    ET.SubElement(root, "vendor-url").text = spec.vendor_url
    parameters = ET.SubElement(root, "parameters")
    for option in spec.options:
        _parameter(parameters, option, option.name)
        for alias in option.aliases:
            _parameter(parameters, option, alias, alias_of=option.name)
    actions = ET.SubElement(root, "actions")
    for action in spec.actions:
        attributes = {"name": action}
        if action == ON:
            attributes["automatic"] = "0"
        ET.SubElement(actions, "action", attributes)
    ET.indent(root, space="\t")
    return '<?xml version="1.0" ?>\n' + ET.tostring(root, encoding="unicode") + "\n"
