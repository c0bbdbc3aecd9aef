"""Manual pages (man(7) roff) written from what the code already declares.

The package's pages come from here at build time: a fence agent's from its declaration (its
``manpage`` action, as fence-agents' agents have one), the ``stackha`` commands' from their
argparse parsers. So a page cannot disagree with the options the program takes.

    python3 -m stackha.manpage stackha|stackha-galera-check
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional

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


def command_page(name: str) -> Page:
    if name == "stackha":
        from stackha.cli import _parser

        return parser_page(
            _parser(), "OpenStack control plane high availability on Pacemaker + Corosync"
        )
    if name == "stackha-galera-check":
        from stackha import galera_check

        # No argparse here: HAProxy runs the check every few seconds, so it parses its four
        # arguments by hand; its page is its docstring.
        paragraphs = [
            " ".join(
                part.replace("``", "")
                .replace(":data:`CREDENTIALS`", galera_check.CREDENTIALS)
                .split()
            )
            for part in (galera_check.__doc__ or "").split("\n\n")
        ]
        return Page(
            name=name,
            section=1,
            summary="HAProxy's health check of a Galera node",
            synopsis=galera_check.USAGE.split(":", 1)[1].strip(),
            description=[p for p in paragraphs[1:] if p] or [paragraphs[0]],
            sections=[("Files", [(galera_check.CREDENTIALS, "the check's client option file")])],
        )
    raise KeyError(name)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from stackha import __version__

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        page = command_page(args[0]) if len(args) == 1 else None
    except KeyError:
        page = None
    if page is None:
        sys.stderr.write("usage: python3 -m stackha.manpage stackha|stackha-galera-check\n")
        return 2
    sys.stdout.write(render(page, __version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
