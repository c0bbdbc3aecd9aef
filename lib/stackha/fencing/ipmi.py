"""IPMI-over-LAN power control through pyghmi's session layer.

Only ``pyghmi.ipmi.private.session`` is imported — not ``pyghmi.ipmi.command``, whose OEM
modules cost more to import than fence_ipmilan's whole status call — and only two IPMI commands
are used: Get Chassis Status and Chassis Control. The password goes to pyghmi in memory: no
program is started, nothing reaches a command line.
"""

from __future__ import annotations

from stackha.fencing.agent import FenceError, TransientDeviceError
from stackha.fencing.messages import cut

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

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


WAIT_SLICE_S = 0.01


def _wait_in_short_slices(session: Any) -> None:
    """Make pyghmi look for its reply every 10 ms instead of sleeping a whole retry interval.

    pyghmi's I/O thread can read a BMC's reply before the requesting thread starts waiting for
    it; the requester then sleeps its full retry timeout (0.5-1 s, randomised) with the answer
    already there. Measured in the lab: 1 call in 5 stalled so; with 10 ms slices, none. The
    module-level ``_io_wait`` is what ``Session.awaitresponse`` calls; if a pyghmi release
    renames it, this does nothing and only the stalls come back.
    """
    original = getattr(session, "_io_wait", None)
    if original is None or getattr(original, "stackha_sliced", False):
        return

    def sliced(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
        return original(min(timeout, WAIT_SLICE_S), myaddr, evq)

    sliced.stackha_sliced = True  # type: ignore[attr-defined]
    session._io_wait = sliced


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

    def login(self) -> None:
        from pyghmi import exceptions

        from stackha.fencing.openssl_aes import session_module

        session = session_module()

        _wait_in_short_slices(session)

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
