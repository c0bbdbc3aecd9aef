"""APC-style switched PDUs over SSH or telnet, driven with pexpect.

The command-line firmware of APC rack PDUs (AOS v5 and newer: ``olStatus``, ``olOn``,
``olOff``) is what this speaks. The firmware version is read whole from the login banner
(fence_apc reads one digit and took v10 for the old menu firmware). Outlets are addressed by
number or by name. Daisy-chained units (APC's Network Port Sharing: one network connection for
up to four PDUs) are addressed as the firmware documents it, ``<display id>:<outlet>``, from the
``switch`` option or fence_apc's ``switch:plug`` notation. The password is typed at the
prompt, never put on a command line; SSH uses the client's modern defaults (fence_apc's
default ``-1 -c blowfish`` fails on OpenSSH 9).
"""

from __future__ import annotations

import re
import shlex

from stackha.fencing.agent import FenceError, TransientDeviceError
from stackha.fencing.messages import cut, quoted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

SSH = "/usr/bin/ssh"
TELNET = "/usr/bin/telnet"
# " 3: web1: On", and for a guest unit possibly " 2:3: web1: On".
OUTLET_LINE = re.compile(r"^\s*(?:\d+:\s*)?(\d+): (.*): (On|Off)\s*$", re.IGNORECASE | re.MULTILINE)
FIRMWARE = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)\b")
COMMAND_LINE_FIRMWARE = 5  # AOS v5 and newer have the olStatus/olOn/olOff command line
CHAIN_UNITS = range(1, 5)  # Network Port Sharing joins at most four units: display ids 1-4
# Error codes of the APC CLI that asking again can change: E106 "Data Not Available", E107
# "Serial communication with the Rack PDU has been lost" (the network card lost the unit for a
# moment). E101-E105 (unknown command, bad parameter, user level) are final.
TRANSIENT_ERRORS = ("E106", "E107")


class PduError(FenceError):
    """The PDU refused or failed; the message says which."""


class PduUnavailable(PduError, TransientDeviceError):
    """The PDU went away or did not answer (a refused or dropped connection, a timeout): it may
    be back in a moment, over a new connection."""

    def __init__(self, message: str) -> None:
        TransientDeviceError.__init__(self, message, session_lost=True)


class ApcPdu:
    """A switched PDU: each outlet powers one machine."""

    def __init__(
        self,
        address: str,
        port: int,
        username: str,
        password: str,
        ssh: bool,
        ssh_options: str = "",
        prompt: str = "apc>",
        timeout: float = 5.0,
        unit: Optional[str] = None,
    ) -> None:
        self.address = address
        self.shown = cut(address)  # in messages: an address of 100 KB is not read
        self.port = port
        self.username = username
        self.password = password
        self.ssh = ssh
        self.ssh_options = ssh_options
        self.prompt = prompt
        self.timeout = timeout
        self.unit = check_unit(unit) if unit else None
        self.connection: Any = None
        self.firmware: Optional[tuple[int, int, int]] = None

    def login(self) -> None:
        import pexpect

        if self.ssh:
            argv = [
                *shlex.split(self.ssh_options),
                "-p",
                str(self.port),
                "-o",
                "PubkeyAuthentication=no",
                f"{self.username}@{self.address}",
            ]
            self.connection = pexpect.spawn(SSH, argv, encoding="utf-8", timeout=self.timeout)
            self.connection.delaybeforesend = None  # see below
            index = self._expect([r"(?i)password:", r"(?i)are you sure you want to continue"])
            if index == 1:
                raise PduError(
                    f"PDU {self.shown}: unknown SSH host key (add it to known_hosts, or pass "
                    "ssh_options)"
                )
            self.connection.sendline(self.password)
        else:
            self.connection = pexpect.spawn(
                TELNET, [self.address, str(self.port)], encoding="utf-8", timeout=self.timeout
            )
            # pexpect waits 50 ms before every send by default, for humans' terminals: 0.2 s
            # of each fencing call for nothing.
            self.connection.delaybeforesend = None
            self._expect([r"User Name\s*:"])
            self.connection.sendline(self.username)
            self._expect([r"Password\s*:"])
            self.connection.sendline(self.password)
        index = self._expect([re.escape(self.prompt), r"(?i)(authentication failed|denied)"])
        if index == 1:
            raise PduError(f"PDU {self.shown}: login refused for {cut(self.username)}")
        banner = self.connection.before or ""
        match = FIRMWARE.search(banner)
        if not match:
            raise PduError(f"PDU {self.shown}: no firmware version in the login banner")
        self.firmware = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        if self.firmware[0] < COMMAND_LINE_FIRMWARE:
            raise PduError(
                f"PDU {self.shown}: firmware v{'.'.join(map(str, self.firmware))} has only "
                "the menu interface; command-line firmware (v5 or newer) is needed"
            )

    def _expect(self, patterns: list[str]) -> int:
        import pexpect

        try:
            index: int = self.connection.expect(patterns)
        except pexpect.EOF:
            said = (self.connection.before or "").strip().splitlines()
            # telnet and ssh say why they could not connect ("Connection refused") and exit.
            why = f" ({said[-1].strip()})" if said and "connect" in said[-1].lower() else ""
            raise PduUnavailable(f"PDU {self.shown}: connection closed{why}") from None
        except pexpect.TIMEOUT:
            raise PduUnavailable(
                f"PDU {self.shown}: no answer within {self.timeout:.0f}s"
            ) from None
        return index

    def _command(self, command: str) -> str:
        self.connection.sendline(command)
        self._expect([re.escape(self.prompt)])
        output = (self.connection.before or "").replace("\r", "")
        if "E000" not in output:
            error = next((line for line in output.splitlines() if re.match(r"E\d{3}", line)), "")
            message = f"PDU {self.shown}: {cut(command)}: {error or 'no success reply'}"
            if error.startswith(TRANSIENT_ERRORS):
                raise TransientDeviceError(message)
            raise PduError(message)
        return output

    def _on_unit(self, outlets: str, unit: Optional[str]) -> str:
        """The firmware's address of outlets on a unit: ``3``, or ``2:3`` on a guest unit."""
        return f"{unit}:{outlets}" if unit else outlets

    def _outlets_of(self, unit: Optional[str]) -> dict[str, str]:
        output = self._command("olStatus " + self._on_unit("all", unit))
        return {number: name.strip() for number, name, _ in OUTLET_LINE.findall(output)}

    def list_outlets(self) -> dict[str, str]:
        return self._outlets_of(self.unit)

    def _outlet(self, plug: Optional[str]) -> tuple[Optional[str], str]:
        """(unit, outlet number) for a plug given as a number, a name, or ``unit:outlet``."""
        if not plug:
            raise PduError("a plug (outlet number or name) is needed")
        unit = self.unit
        head, colon, tail = plug.partition(":")
        if colon and head.isascii() and head.isdigit() and tail:
            unit, plug = check_unit(head), tail  # fence_apc's switch:plug notation
        if plug.isascii() and plug.isdigit():
            return unit, plug
        for number, name in self._outlets_of(unit).items():
            if name == plug:
                return unit, number
        where = f" on unit {unit}" if unit else ""
        raise PduError(f"PDU {self.shown}: no outlet named {cut(plug)}{where}")

    def get_power(self, plug: Optional[str]) -> str:
        unit, outlet = self._outlet(plug)
        output = self._command("olStatus " + self._on_unit(outlet, unit))
        for number, _, state in OUTLET_LINE.findall(output):
            if number == outlet:
                return str(state).lower()
        raise PduError(f"PDU {self.shown}: no status for outlet {cut(self._on_unit(outlet, unit))}")

    def set_power(self, plug: Optional[str], state: str) -> None:
        unit, outlet = self._outlet(plug)
        self._command(f"{'olOn' if state == 'on' else 'olOff'} {self._on_unit(outlet, unit)}")

    def logout(self) -> None:
        if self.connection is not None:
            try:
                self.connection.sendline("quit")
            finally:
                self.connection.close(force=True)
                self.connection = None


def check_unit(text: str) -> str:
    """A daisy-chained unit's display id, checked: 1 (the host) to 4."""
    if not (text.isascii() and text.isdigit()) or int(text) not in CHAIN_UNITS:
        raise PduError(
            f"switch {quoted(text)}: a unit of a PDU chain is its display id, 1 (the host) to 4"
        )
    return str(int(text))
