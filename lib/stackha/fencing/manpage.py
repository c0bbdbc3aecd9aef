"""A fence agent's manual page, from its declaration (the agent's ``manpage`` action).

fence-agents' agents print their meta-data for ``-o manpage`` and a stylesheet of their build
turns it into roff; stackha's print the roff itself, so the package builds its pages with
nothing but the agents.
"""

from __future__ import annotations

from stackha.manpage import Page

TYPE_CHECKING = False
if TYPE_CHECKING:
    from stackha.fencing.spec import FenceAgentSpec, FenceOption

# What each action does, in the words of fence-agents' own manual pages.
ACTIONS = {
    "on": "Power on the machine.",
    "off": "Power off the machine; succeeds only once the device reports it off.",
    "reboot": "Power off, verify it is off, then power on.",
    "status": "Report the machine's power state (exit 0 on, 2 off).",
    "monitor": "Check that the fence device answers.",
    "list": "List the plugs or machines the device controls.",
    "list-status": "List the plugs or machines the device controls, with their states.",
    "metadata": "Print the agent's meta-data (XML) for pacemaker-fenced and pcs.",
    "manpage": "Print this manual page (roff).",
    "validate-all": "Check the options without contacting the device.",
    "diag": "Pulse a diagnostic interrupt to the machine (a crash dump where one is set up).",
}


def _term(option: FenceOption) -> str:
    term = (f"{option.short}, " if option.short else "") + option.long
    if option.type != "boolean":
        term += f"={option.metavar or option.name.upper()}"
    return term


def _text(option: FenceOption) -> str:
    text = option.shortdesc.rstrip(".") + "."
    if option.choices:
        text += f" One of: {', '.join(option.choices)}."
    if option.default is not None and option.default != "" and option.default is not False:
        default = "on" if option.default is True else option.default
        text += f" Default: {default}."
    if option.aliases:
        text += f" Also accepted as {', '.join(option.aliases)} (stdin)."
    if option.secret:
        text += " A secret: give it on stdin or through a file option, never on a command line."
    return text


def fence_page(spec: FenceAgentSpec) -> Page:
    description = [
        spec.longdesc,
        "Options are given on the command line, or as name=value lines on standard input, "
        "which is how pacemaker-fenced and stonith_admin pass them. Exit status: 0 on "
        "success, 1 on failure (with a message on standard error), 2 from status when the "
        "machine is off.",
    ]
    sections = [
        ("Options", [(_term(option), _text(option)) for option in spec.options]),
        ("Actions", [(action, ACTIONS.get(action, "")) for action in spec.actions]),
    ]
    if spec.example:
        sections.append(("Example", [("", spec.example)]))
    return Page(
        name=spec.name,
        section=8,
        summary=spec.shortdesc,
        synopsis=f"{spec.name} [OPTION]...",
        description=description,
        sections=sections,
    )
