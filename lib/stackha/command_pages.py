"""The manual pages of the ``stackha`` commands, for the Debian package's build:

    python3 -m stackha.command_pages stackha|stackha-galera-check

``stackha``'s from its argparse parser, ``stackha-galera-check``'s from its docstring, both
rendered by stackha.manpage.
"""

from __future__ import annotations

import sys

from stackha.manpage import Page, parser_page, render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional


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
        sys.stderr.write("usage: python3 -m stackha.command_pages stackha|stackha-galera-check\n")
        return 2
    sys.stdout.write(render(page, __version__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
