"""APC-style switched PDUs over SSH or telnet, driven with pexpect.

The command-line firmware of APC rack PDUs (AOS v5 and newer: ``olStatus``, ``olOn``,
``olOff``) is what this speaks. The firmware version is read whole from the login banner
(fence_apc reads one digit and took v10 for the old menu firmware). Outlets are addressed by
number or by name. The password is typed at the prompt, never put on a command line; SSH uses
the client's modern defaults (fence_apc's default ``-1 -c blowfish`` fails on OpenSSH 9).
"""

from __future__ import annotations

import re
import shlex

from stackha.fencing.agent import FenceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

SSH = "/usr/bin/ssh"
TELNET = "/usr/bin/telnet"
OUTLET_LINE = re.compile(r"^\s*(\d+): (.*): (On|Off)\s*$", re.IGNORECASE | re.MULTILINE)
FIRMWARE = re.compile(r"\bv(\d+)\.(\d+)\.(\d+)\b")
COMMAND_LINE_FIRMWARE = 5  # AOS v5 and newer have the olStatus/olOn/olOff command line


class PduError(FenceError):
    """The PDU refused, failed or went away; the message says which."""


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
    ) -> None:
        self.address = address
        self.port = port
        self.username = username
        self.password = password
        self.ssh = ssh
        self.ssh_options = ssh_options
        self.prompt = prompt
        self.timeout = timeout
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
                    f"PDU {self.address}: unknown SSH host key (add it to known_hosts, or pass "
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
            raise PduError(f"PDU {self.address}: login refused for {self.username}")
        banner = self.connection.before or ""
        match = FIRMWARE.search(banner)
        if not match:
            raise PduError(f"PDU {self.address}: no firmware version in the login banner")
        self.firmware = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
        if self.firmware[0] < COMMAND_LINE_FIRMWARE:
            raise PduError(
                f"PDU {self.address}: firmware v{'.'.join(map(str, self.firmware))} has only "
                "the menu interface; command-line firmware (v5 or newer) is needed"
            )

    def _expect(self, patterns: list[str]) -> int:
        import pexpect

        try:
            index: int = self.connection.expect(patterns)
        except pexpect.EOF:
            raise PduError(f"PDU {self.address}: connection closed") from None
        except pexpect.TIMEOUT:
            raise PduError(f"PDU {self.address}: no answer within {self.timeout:.0f}s") from None
        return index

    def _command(self, command: str) -> str:
        self.connection.sendline(command)
        self._expect([re.escape(self.prompt)])
        output = (self.connection.before or "").replace("\r", "")
        if "E000" not in output:
            error = next((line for line in output.splitlines() if re.match(r"E\d{3}", line)), "")
            raise PduError(f"PDU {self.address}: {command}: {error or 'no success reply'}")
        return output

    def list_outlets(self) -> dict[str, str]:
        output = self._command("olStatus all")
        return {number: name.strip() for number, name, _ in OUTLET_LINE.findall(output)}

    def _outlet(self, plug: Optional[str]) -> str:
        """The outlet number for a plug given as a number or as an outlet name."""
        if not plug:
            raise PduError("a plug (outlet number or name) is needed")
        if plug.isdigit():
            return plug
        for number, name in self.list_outlets().items():
            if name == plug:
                return number
        raise PduError(f"PDU {self.address}: no outlet named {plug}")

    def get_power(self, plug: Optional[str]) -> str:
        outlet = self._outlet(plug)
        for number, _, state in OUTLET_LINE.findall(self._command(f"olStatus {outlet}")):
            if number == outlet:
                return str(state).lower()
        raise PduError(f"PDU {self.address}: no status for outlet {outlet}")

    def set_power(self, plug: Optional[str], state: str) -> None:
        outlet = self._outlet(plug)
        self._command(f"{'olOn' if state == 'on' else 'olOff'} {outlet}")

    def logout(self) -> None:
        if self.connection is not None:
            try:
                self.connection.sendline("quit")
            finally:
                self.connection.close(force=True)
                self.connection = None
