"""What a fence agent writes for an operator: one line per message whatever the input, no
secret in any form, and values cut to their first hundred characters.

pacemaker-fenced logs an agent's stderr line by line: a newline (or a carriage return, an
escape sequence) in an option name or value would otherwise forge a line of its own.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TextIO

SHOWN_CHARS = 100  # of a value echoed in a message
LINE_CHARS = 2000  # of a whole message: a backstop for text the agent does not control
MASK = "***"
NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped as Python writes it
    (``\\n``, ``\\x1b``, ``\\u2028``, ``\\udcff`` for an undecodable byte); backslashes stay."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c == " " else NAMED_ESCAPES.get(c) or repr(c)[1:-1] for c in text
    )


def cut(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text``, or its first ``limit`` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def quoted(text: str) -> str:
    """A value as a message shows it: quoted, escaped, at most ~100 characters."""
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"{text[:SHOWN_CHARS]!r}… ({len(text)} characters)"


def masked(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``, as given, escaped or quoted."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in (secret, one_line(secret), repr(secret)[1:-1]):
            text = text.replace(form, MASK)
    return text


class Messages:
    """An agent's stderr: ``ERROR:`` and ``WARNING:`` lines, each one line, secrets masked.

    ``secrets`` grows as the agent learns them (the password once the options are read).
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.secrets: list[str] = []

    def line(self, level: str, message: str) -> None:
        text = masked(one_line(masked(message, self.secrets)), self.secrets)
        self.stream.write(f"{level}: {cut(text, LINE_CHARS)}\n")

    def error(self, message: str) -> None:
        self.line("ERROR", message)

    def warning(self, message: str) -> None:
        self.line("WARNING", message)
