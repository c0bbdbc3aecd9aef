"""Manual pages (man(7) roff) written from what the code already declares.

The package's pages are rendered here at build time: a fence agent's from its declaration
(its ``manpage`` action, as fence-agents' agents have one, through stackha.fencing.manpage),
the ``stackha`` commands' from their argparse parsers (stackha.command_pages). So a page cannot
disagree with the options the program takes. The renderer knows no program: the programs know
it.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# Named in the page's header line; the package version is stackha.__version__.
SOURCE = "stackha"
MANUAL = "stackha manual"


class Page:
    """One manual page: a name line, a synopsis, a description and titled sections of
    (term, text) items."""

    def __init__(
        self,
        name: str,
        section: int,
        summary: str,
        synopsis: str,
        description: Sequence[str],
        sections: Sequence[tuple[str, Sequence[tuple[str, str]]]] = (),
    ) -> None:
        self.name = name
        self.section = section
        self.summary = summary
        self.synopsis = synopsis
        self.description = list(description)
        self.sections = list(sections)


def escape(text: str) -> str:
    """Text as roff shows it literally: backslashes and hyphens escaped, no line read as a
    request."""
    lines = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").split("\n"):
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def render(page: Page, version: str) -> str:
    out = [
        f'.TH "{page.name.upper()}" "{page.section}" "" "{SOURCE} {version}" "{MANUAL}"',
        ".SH NAME",
        f"{escape(page.name)} \\- {escape(page.summary)}",
        ".SH SYNOPSIS",
        f".B {escape(page.synopsis)}",
        ".SH DESCRIPTION",
    ]
    for number, paragraph in enumerate(page.description):
        if number:
            out.append(".PP")
        out.append(escape(paragraph))
    for title, items in page.sections:
        out.append(f".SH {escape(title.upper())}")
        for term, text in items:
            out += [".TP", f".B {escape(term)}", escape(text)] if term else [".PP", escape(text)]
    return "\n".join(out) + "\n"


def _parser_sections(parser: argparse.ArgumentParser) -> list[tuple[str, list[tuple[str, str]]]]:
    options: list[tuple[str, str]] = []
    commands: list[tuple[str, str]] = []
    arguments: list[tuple[str, str]] = []
    for action in parser._actions:  # argparse offers no public walk of its arguments
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                subparser = action.choices[choice.dest]
                usage = subparser.format_usage().split(":", 1)[1].strip()
                commands.append((usage, choice.help or ""))
        elif action.help == argparse.SUPPRESS:
            continue
        elif action.option_strings:
            term = ", ".join(action.option_strings)
            if action.nargs != 0:
                term += f" {action.metavar or action.dest.upper()}"
            options.append((term, action.help or ""))
        else:
            arguments.append((str(action.metavar or action.dest), action.help or ""))
    sections = [("Arguments", arguments), ("Commands", commands), ("Options", options)]
    return [(title, items) for title, items in sections if items]


def parser_page(parser: argparse.ArgumentParser, summary: str, section: int = 1) -> Page:
    """The page of a command from its argparse parser."""
    synopsis = parser.format_usage().split(":", 1)[1].strip()
    return Page(
        name=parser.prog,
        section=section,
        summary=summary,
        synopsis=" ".join(synopsis.split()),
        description=[parser.description or summary],
        sections=_parser_sections(parser),
    )
