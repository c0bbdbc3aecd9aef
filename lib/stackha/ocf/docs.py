"""The operator's docs page of an agent, from its declaration."""

from __future__ import annotations

from stackha.ocf.spec import AgentSpec


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_docs(spec: AgentSpec, provider: str = "stackha") -> str:
    """Markdown: what the agent does, how to create it, its parameters and default operations."""
    lines = [
        f"# ocf:{provider}:{spec.name}",
        "",
        f"_{spec.shortdesc}_ (agent version {spec.version}, OCF 1.1)",
        "",
        spec.longdesc,
        "",
    ]
    if spec.example:
        lines += ["## Example", "", "```", spec.example, "```", ""]
    lines += [
        "## Parameters",
        "",
        "| name | type | default | required | reloadable | description |",
        "|---|---|---|---|---|---|",
    ]
    for parameter in spec.parameters:
        kind = parameter.type
        if parameter.type == "select":
            kind = "one of " + ", ".join(f"`{c}`" for c in parameter.choices)
        elif parameter.type == "integer" and (
            parameter.minimum is not None or parameter.maximum is not None
        ):
            low = "" if parameter.minimum is None else str(parameter.minimum)
            high = "" if parameter.maximum is None else str(parameter.maximum)
            kind = f"integer {low}…{high}"
        default = parameter.default_text()
        description = parameter.longdesc
        if parameter.secret:
            description += " Secret: never logged."
        if parameter.replaced_by:
            description += f" Deprecated: use `{parameter.replaced_by}`."
        lines.append(
            f"| `{parameter.name}` | {_cell(kind)} | {f'`{default}`' if default else ''} | "
            f"{'yes' if parameter.required else ''} | {'yes' if parameter.reloadable else ''} | "
            f"{_cell(description)} |"
        )
    lines += [
        "",
        "## Actions",
        "",
        "| action | timeout | interval | depth | role |",
        "|---|---|---|---|---|",
    ]
    for action in spec.actions:
        lines.append(
            f"| {action.name} | {action.timeout}s | "
            f"{f'{action.interval}s' if action.interval is not None else ''} | "
            f"{action.depth if action.depth is not None else ''} | {action.role or ''} |"
        )
    return "\n".join(lines) + "\n"
