"""IPMI-over-LAN power control through pyghmi's session layer.

Only ``pyghmi.ipmi.private.session`` is imported — not ``pyghmi.ipmi.command``, whose OEM
modules cost more to import than fence_ipmilan's whole status call — and only two IPMI commands
are used: Get Chassis Status and Chassis Control. The password goes to pyghmi in memory: no
program is started, nothing reaches a command line.
"""

from __future__ import annotations

import sys

from stackha.fencing.agent import FenceError, TransientDeviceError
from stackha.fencing.messages import cut

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Optional

CHASSIS_NETFN = 0x00
GET_CHASSIS_STATUS = 0x01
CHASSIS_CONTROL = 0x02
CONTROL = {"off": 0x00, "on": 0x01, "cycle": 0x02}
PRIVILEGE = {"callback": 1, "user": 2, "operator": 3, "administrator": 4}
# Completion codes a BMC gives for a command it may carry out if asked again (IPMI 2.0 table
# 5-2): Node Busy, a timeout while processing, a response it could not provide, a command it
# cannot run in its present state (BMCs say so while they initialise), an unspecified error
# (openbmc's while it boots), and pyghmi's own "no answer after its retries". Every other code
# (invalid command, data, privilege) is an answer that asking again will not change.
TRANSIENT_CODES = frozenset({0xC0, 0xC3, 0xCE, 0xD5, 0xFF, 0xFFFF})
NO_ANSWER = "None"  # what pyghmi's login says when nothing answered at all
# Login failures that can pass: nothing answered yet, or the BMC is out of session slots.
TRANSIENT_LOGIN = ("timeout", "Insufficient resources to create new session")
SESSION_LOST = "Session no longer connected"
# The oldest pyghmi release the package tier (tests/package) proves: Debian 12's. What the agent
# needs is checked by feature (below), not by number: this is what the message recommends.
MINIMUM_PYGHMI = "1.5.34"
INSTALL_HINT = "apt install python3-pyghmi"
# What the agent calls in pyghmi's session layer, with the arguments it passes.
SESSION_ARGUMENTS = ("bmc", "userid", "password", "port", "kg", "privlevel", "keepalive")
RAW_COMMAND_ARGUMENTS = ("netfn", "command", "data")
IO_WAIT_ARGUMENTS = ("timeout", "myaddr", "evq")


WAIT_SLICE_S = 0.01


class PyghmiUnsupported(FenceError):
    """pyghmi is missing, or lacks what the agent needs; the message names what."""


def pyghmi_version() -> str:
    """The version of the pyghmi distribution the imported ``pyghmi`` package comes from (the
    first one on ``sys.path`` if none is imported), or ``(version unknown)``."""
    from importlib import metadata
    from pathlib import Path

    location = getattr(sys.modules.get("pyghmi"), "__file__", None)
    try:
        if location:
            directory = str(Path(location).resolve().parents[1])
            for found in metadata.distributions(name="pyghmi", path=[directory]):
                return str(found.version)
        return metadata.version("pyghmi")
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return "(version unknown)"


def lacking_arguments(function: object, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` ``function`` takes by keyword neither by name nor through ``**``."""
    code = getattr(function, "__code__", None)
    if code is None:
        return list(names)
    if code.co_flags & 0x08:  # CO_VARKEYWORDS: takes any keyword
        return []
    taken = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return [name for name in names if name not in taken]


def lacking(session: ModuleType, exceptions: ModuleType) -> Optional[str]:
    """What the agent uses and this pyghmi's session layer lacks, in words; None if nothing."""
    cls = getattr(session, "Session", None)
    if not isinstance(cls, type):
        return "pyghmi.ipmi.private.session.Session"
    missing = lacking_arguments(getattr(cls, "__init__", None), SESSION_ARGUMENTS)
    if missing:
        return f"Session({missing[0]}=...)"  # keepalive: not in pyghmi 1.3.0
    for method, arguments in (("raw_command", RAW_COMMAND_ARGUMENTS), ("logout", ())):
        function = getattr(cls, method, None)
        if not callable(function):
            return f"Session.{method}()"
        missing = lacking_arguments(function, arguments)
        if missing:
            return f"Session.{method}({missing[0]}=...)"
    if not isinstance(getattr(exceptions, "IpmiException", None), type):
        return "pyghmi.exceptions.IpmiException"
    return None


def load_session() -> tuple[ModuleType, ModuleType, list[str]]:
    """pyghmi's session module (AES from libcrypto where it fits), its exceptions module, and
    notes for the log: AES through the cryptography package after all (on the first call of a
    process only, when the choice is made), or a hook the agent could not set.

    Raises PyghmiUnsupported, naming what is missing, when pyghmi is not installed or lacks
    what the agent calls.
    """
    from stackha.fencing.openssl_aes import session_module

    try:
        session, aes_note = session_module()
        from pyghmi import exceptions
    except ImportError as error:
        missing = getattr(error, "name", None) or ""
        if missing == "pyghmi":
            raise PyghmiUnsupported(f"pyghmi is not installed ({INSTALL_HINT})") from None
        if missing and missing.split(".")[0] != "pyghmi":
            raise PyghmiUnsupported(
                f"pyghmi {pyghmi_version()} needs the Python module {missing}, which is not "
                "installed"
            ) from None
        raise PyghmiUnsupported(
            f"pyghmi {pyghmi_version()} cannot be imported ({error}); stackha needs pyghmi >= "
            f"{MINIMUM_PYGHMI}"
        ) from None
    missing_feature = lacking(session, exceptions)
    if missing_feature:
        raise PyghmiUnsupported(
            f"pyghmi {pyghmi_version()} lacks {missing_feature}; stackha needs pyghmi >= "
            f"{MINIMUM_PYGHMI}"
        )
    notes = [f"pyghmi {pyghmi_version()}: {aes_note}"] if aes_note else []
    hook_note = _wait_in_short_slices(session)
    if hook_note:
        notes.append(f"pyghmi {pyghmi_version()}: {hook_note}")
    return session, exceptions, notes


def _wait_in_short_slices(session: Any) -> Optional[str]:
    """Make pyghmi look for its reply every 10 ms instead of sleeping a whole retry interval.

    pyghmi's I/O thread can read a BMC's reply before the requesting thread starts waiting for
    it; the requester then sleeps its full retry timeout (0.5-1 s, randomised) with the answer
    already there. Measured in the lab: 1 call in 5 stalled so; with 10 ms slices, none. The
    module-level ``_io_wait`` is what ``Session.awaitresponse`` calls (pyghmi 1.5.34, 1.5.70,
    1.6.19); if a pyghmi release renames it or changes its arguments, this leaves it alone and
    returns a note saying so: only the stalls come back.
    """
    original: Optional[Callable[..., Any]] = getattr(session, "_io_wait", None)
    if original is not None and getattr(original, "stackha_sliced", False):
        return None
    if original is None or lacking_arguments(original, IO_WAIT_ARGUMENTS):
        return (
            "no _io_wait(timeout, myaddr, evq) to wait for replies in 10 ms slices: a reply may "
            "wait out a retry interval (0.5-1 s)"
        )

    def sliced(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
        return original(min(timeout, WAIT_SLICE_S), myaddr, evq)

    sliced.stackha_sliced = True  # type: ignore[attr-defined]
    session._io_wait = sliced
    return None


class IpmiError(FenceError):
    """The BMC refused or failed; the message is the BMC's (or pyghmi's) reason."""


class IpmiDevice:
    """A single-port fence device: the BMC of one machine."""

    def __init__(
        self,
        address: str,
        port: int,
        username: str,
        password: str,
        privilege: str = "administrator",
        kg: Optional[bytes] = None,
    ) -> None:
        self.address = address
        self.shown = cut(address)  # in messages: an address of 100 KB is not read
        self.port = port
        self.username = username
        self.password = password
        self.privilege = PRIVILEGE[privilege]
        self.kg = kg
        self.session: Any = None
        self.notes: list[str] = []  # for the log, once: how pyghmi was loaded, if not as meant

    def login(self) -> None:
        session, exceptions, notes = load_session()
        self.notes.extend(notes)
        try:
            self.session = session.Session(
                bmc=self.address,
                userid=self.username,
                password=self.password,
                port=self.port,
                kg=self.kg,
                privlevel=self.privilege,
                keepalive=False,
            )
        except exceptions.IpmiException as err:
            reason = str(err) if str(err) != NO_ANSWER else "no answer"
            message = f"login to BMC {self.shown}:{self.port} failed: {reason}"
            if str(err) == NO_ANSWER or reason.startswith(TRANSIENT_LOGIN):
                raise TransientDeviceError(message) from err
            # Bad credentials, an unknown user, a privilege not granted: asking again with the
            # same options cannot help, and would lock accounts on some BMCs.
            raise IpmiError(message) from err
        if getattr(self.session, "broken", False):
            raise TransientDeviceError(f"login to BMC {self.shown}:{self.port} failed")

    def _raw(self, command: int, data: tuple[int, ...] = ()) -> list[int]:
        from pyghmi import exceptions

        try:
            response = self.session.raw_command(netfn=CHASSIS_NETFN, command=command, data=data)
        except exceptions.IpmiException as err:
            if SESSION_LOST in str(err):
                raise TransientDeviceError(f"BMC {self.shown}: {err}", session_lost=True) from err
            raise IpmiError(f"BMC {self.shown}: {err}") from err
        if "error" in response:
            message = f"BMC {self.shown}: {response['error']}"
            if response.get("code") in TRANSIENT_CODES:
                raise TransientDeviceError(message)
            raise IpmiError(message)
        return list(response.get("data", []))

    def get_power(self, plug: Optional[str]) -> str:
        data = self._raw(GET_CHASSIS_STATUS)
        if not data:
            raise IpmiError(f"BMC {self.shown}: empty chassis status")
        return "on" if data[0] & 0x01 else "off"

    def set_power(self, plug: Optional[str], state: str) -> None:
        self._raw(CHASSIS_CONTROL, (CONTROL[state],))

    def cycle(self, plug: Optional[str]) -> None:
        self._raw(CHASSIS_CONTROL, (CONTROL["cycle"],))

    def list_outlets(self) -> None:
        return None

    def logout(self) -> None:
        if self.session is not None:
            self.session.logout()
            self.session = None
