"""One declaration of a fence agent's options, in fence-agents' names.

Names are fence-agents' (``ip``, ``username``, ``password``, ``plug``…) with their legacy aliases
(``ipaddr``, ``login``, ``passwd``, ``port``), so an incumbent agent can be swapped for ours by
changing one word in ``pcs stonith create``.
"""

from __future__ import annotations

import math

from stackha.fencing.messages import quoted
from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union

    Value = Union[str, int, float, bool]

OPTION_TYPES = ("string", "integer", "second", "boolean", "select")
TRUE_WORDS = frozenset({"1", "yes", "true", "on", "y"})
FALSE_WORDS = frozenset({"0", "no", "false", "off", "n"})
INTEGER_DIGITS = 18  # past this, a number of anything an agent counts is not meant
MAX_SECONDS = 86400.0  # no step of a fencing action waits a day


class FenceOption(Record):
    """One option: a ``name=value`` line on stdin, or ``--name value`` on the command line."""

    __slots__ = (
        "name",
        "shortdesc",
        "type",
        "default",
        "required",
        "secret",
        "aliases",
        "short",
        "choices",
        "metavar",
        "minimum",
        "maximum",
        "positive",
    )
    name: str
    shortdesc: str
    type: str
    default: Optional[Value]
    required: bool
    secret: bool
    aliases: tuple[str, ...]
    short: Optional[str]
    choices: tuple[str, ...]
    metavar: str
    minimum: Optional[int]  # an integer's bounds, inclusive
    maximum: Optional[int]
    positive: bool  # a number of seconds that must be more than 0 (a timeout)

    def __init__(
        self,
        name: str,
        shortdesc: str,
        type: str = "string",
        default: Optional[Value] = None,
        required: bool = False,
        secret: bool = False,
        aliases: tuple[str, ...] = (),
        short: Optional[str] = None,
        choices: tuple[str, ...] = (),
        metavar: str = "",
        minimum: Optional[int] = None,
        maximum: Optional[int] = None,
        positive: bool = False,
    ) -> None:
        self._freeze(locals())
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option {self.name}: unknown type {self.type!r}")
        if self.type == "select" and not self.choices:
            raise ValueError(f"option {self.name}: a select needs choices")

    @property
    def long(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, text: str) -> Value:
        """The typed value; ValueError says why not (without the value, for secrets).

        Numbers are ASCII decimal, without spaces; an integer within its bounds; seconds
        finite, not negative, at most a day, and more than 0 for a timeout.
        """
        if self.type == "integer":
            if not _is_decimal(text):
                raise ValueError(f"{quoted(text)} is not an integer")
            if len(text.lstrip("-")) > INTEGER_DIGITS:
                # int() of 5,000 digits raises; none of the bounds is that far.
                raise ValueError(f"{quoted(text)} is out of range")
            number = int(text)
            low = self.minimum if self.minimum is not None else number
            high = self.maximum if self.maximum is not None else number
            if not low <= number <= high:
                bounds = f"{self.minimum}-{self.maximum}"
                if self.maximum is None:
                    bounds = f"at least {self.minimum}"
                elif self.minimum is None:
                    bounds = f"at most {self.maximum}"
                raise ValueError(f"{quoted(text)} is not in {bounds}")
            return number
        if self.type == "second":
            whole, _, fraction = text.partition(".")
            seconds = float(text) if _is_decimal(whole + fraction) else math.nan
            if not math.isfinite(seconds):
                raise ValueError(f"{quoted(text)} is not a number of seconds")
            if seconds < 0:
                raise ValueError(f"{quoted(text)} is negative")
            if self.positive and seconds == 0:
                raise ValueError(f"{quoted(text)} is not a positive number of seconds")
            if seconds > MAX_SECONDS:
                raise ValueError(f"{quoted(text)} is more than {MAX_SECONDS:.0f} seconds (a day)")
            return seconds
        text = text.strip()
        if self.type == "boolean":
            word = text.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"{quoted(text)} is not a boolean (use 1 or 0)")
        if self.type == "select":
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise ValueError(f"{quoted(text)} is not one of {', '.join(self.choices)}")
        return text


def _is_decimal(text: str) -> bool:
    """ASCII digits, a minus sign before them allowed. int() and float() also take "٣", "1_0",
    " 7 ", "+7", and float() "nan", "inf" and "1e999"."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


class FenceAgentSpec(Record):
    """A fence agent: its options and the actions it offers."""

    __slots__ = ("name", "shortdesc", "longdesc", "vendor_url", "options", "actions", "example")
    name: str
    shortdesc: str
    longdesc: str
    vendor_url: str
    options: tuple[FenceOption, ...]
    actions: tuple[str, ...]
    example: str

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str,
        vendor_url: str,
        options: tuple[FenceOption, ...],
        actions: tuple[str, ...],
        example: str = "",
    ) -> None:
        self._freeze(locals())
        names = [o.name for o in options] + [a for o in options for a in o.aliases]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"agent {name}: options declared twice: {sorted(duplicates)}")

    def option(self, name: str) -> FenceOption:
        """The option called ``name`` or having it as an alias (``-``/``_`` alike)."""
        key = name.replace("-", "_")
        for option in self.options:
            if option.name == key or key in option.aliases:
                return option
        raise KeyError(name)


# Options every stackha fence agent has, as fence-agents names them.
ACTION = FenceOption(
    "action",
    "Fencing action",
    default="reboot",
    short="-o",
    metavar="action",
)
PLUG = FenceOption(
    "plug",
    "Physical plug number on device, UUID or identification of machine",
    aliases=("port",),
    short="-n",
    metavar="id",
)
IP = FenceOption(
    "ip",
    "IP address or hostname of fencing device",
    aliases=("ipaddr",),
    short="-a",
    metavar="ip",
    required=True,
)
USERNAME = FenceOption(
    "username", "Login name", aliases=("login",), short="-l", metavar="name", required=True
)
PASSWORD = FenceOption(
    "password",
    "Login password or passphrase",
    aliases=("passwd",),
    short="-p",
    metavar="password",
    secret=True,
)
PASSWORD_SCRIPT = FenceOption(
    "password_script",
    "Script to run to retrieve password (run without a shell; its first line is the password)",
    aliases=("passwd_script",),
    short="-S",
    metavar="script",
)
POWER_TIMEOUT = FenceOption(
    "power_timeout",
    "Test X seconds for status change after ON/OFF",
    type="second",
    default=20,
    positive=True,
)
POWER_WAIT = FenceOption(
    "power_wait", "Wait X seconds after issuing ON/OFF", type="second", default=0
)
LOGIN_TIMEOUT = FenceOption(
    "login_timeout",
    "Wait X seconds for the login to the device to finish",
    type="second",
    default=5,
    positive=True,
)
SHELL_TIMEOUT = FenceOption(
    "shell_timeout",
    "Wait X seconds for the device to answer a command",
    type="second",
    default=5,
    positive=True,
)
DELAY = FenceOption("delay", "Wait X seconds before fencing is started", type="second", default=0)
VERBOSE = FenceOption("verbose", "Verbose mode", type="boolean", default=False, short="-v")
COMMON = (ACTION, POWER_TIMEOUT, POWER_WAIT, LOGIN_TIMEOUT, SHELL_TIMEOUT, DELAY, VERBOSE)
