"""Logging the way Pacemaker expects of an agent.

Destinations follow resource-agents' ``ha_log``: syslog when ``HA_LOGFACILITY`` names a facility,
the file ``HA_LOGFILE`` when set, and stderr when neither is (an agent run by hand).
Warnings and errors always reach stderr too, where pacemaker-execd records them. Debug lines are
written only with ``HA_debug`` on (to ``HA_DEBUGLOG`` as well when set). Every line has every
secret the agent knows of replaced by ``***``.

Whatever a message holds, it is logged as one line of valid UTF-8 (:func:`one_line`) and logging
never raises: a value Pacemaker passes can hold any byte but NUL, and a log line an agent cannot
write must not turn into a traceback instead of an exit reason.
"""

from __future__ import annotations

import os
import sys
import time

# typing is for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Optional, TextIO

LEVELS = ("debug", "info", "warning", "error")
# Longer messages are cut: syslog drops what is past its own limit (8 KiB in rsyslog) anyway.
MAX_MESSAGE_CHARS = 4000
MAX_TAG_CHARS = 100
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as one printable line of valid UTF-8, at most about ``limit`` characters.

    A byte that was not UTF-8 (Python decodes the environment and argv with surrogateescape)
    becomes ``\\xNN``; a newline ``\\n`` (one message never forges a second line), any other
    control or unprintable character ``\\xNN``/``\\uNNNN``. Printable text is unchanged.
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    if text.isprintable():
        return text
    escaped = []
    for char in text:
        if char.isprintable():
            escaped.append(char)
        elif char in _ESCAPES:
            escaped.append(_ESCAPES[char])
        elif "\udc80" <= char <= "\udcff":
            escaped.append(f"\\x{ord(char) - 0xDC00:02x}")
        elif ord(char) < 0x100:
            escaped.append(f"\\x{ord(char):02x}")
        else:
            escaped.append(f"\\u{ord(char):04x}" if ord(char) < 0x10000 else f"\\U{ord(char):08x}")
    return "".join(escaped)


class AgentLog:
    """One agent call's logger."""

    def __init__(
        self,
        tag: str,
        *,
        facility: Optional[str] = None,
        log_file: Optional[str] = None,
        debug_log_file: Optional[str] = None,
        debug: bool = False,
        stderr: Optional[TextIO] = None,
    ) -> None:
        self.tag = one_line(tag, MAX_TAG_CHARS)
        self.facility = facility
        self.log_file = log_file
        self.debug_log_file = debug_log_file
        self.debug_enabled = debug
        self.stderr = stderr if stderr is not None else sys.stderr
        self._secrets: list[str] = []

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Mask these values in every later line."""
        self._secrets.extend(s for s in secrets if s)

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", message)

    def error(self, message: str) -> None:
        self._emit("error", message)

    def _emit(self, level: str, message: str) -> None:
        if level == "debug" and not self.debug_enabled:
            return
        try:
            self._write(level, one_line(self.mask(message)))
        except (OSError, ValueError):
            pass  # a log we cannot write (stderr closed, a full disk) must not fail the action

    def _write(self, level: str, message: str) -> None:
        line = f"{self.tag}[{os.getpid()}]: {level.upper()}: {message}"
        wrote_elsewhere = False
        if self.facility:
            self._syslog(level, line)
            wrote_elsewhere = True
        if self.log_file:
            wrote_elsewhere = self._append(self.log_file, line) or wrote_elsewhere
        if level == "debug" and self.debug_log_file:
            self._append(self.debug_log_file, line)
        if not wrote_elsewhere or level in ("warning", "error"):
            self.stderr.write(f"{level.upper()}: {message}\n")
            self.stderr.flush()

    def _append(self, path: str, line: str) -> bool:
        stamp = time.strftime("%b %d %H:%M:%S")
        try:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(f"{stamp} {line}\n")
        except OSError:
            return False  # a log file we cannot write must not fail the action
        return True

    def _syslog(self, level: str, line: str) -> None:
        # Imported here: syslog is only needed under a cluster that asks for it.
        import syslog

        facility = getattr(syslog, f"LOG_{(self.facility or 'daemon').upper()}", syslog.LOG_DAEMON)
        priority = {
            "debug": syslog.LOG_DEBUG,
            "info": syslog.LOG_INFO,
            "warning": syslog.LOG_WARNING,
            "error": syslog.LOG_ERR,
        }[level]
        syslog.openlog(self.tag, 0, facility)
        syslog.syslog(priority, line)
