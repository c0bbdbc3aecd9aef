"""A switched PDU simulator for the lab: one outlet per node, an APC-style command line.

It speaks the command-line interface of APC rack PDUs with AOS v6 firmware (``olStatus``,
``olOn``, ``olOff``, ``olReboot``), which is what fence-agents' ``fence_apc`` drives, over
telnet (with the device's own ``User Name :``/``Password  :`` login) and over a real SSH server
(Debian's sshd, whose forced command relays the session here through an abstract UNIX socket of
the lab switch's network namespace: SSH has authenticated the user). Switching an outlet off
kills every process of its node; on boots it.

Run by the lab inside the switch's network namespace: ``python -m stackha.lab.pdu serve LAB_DIR``.
The SSH side runs ``python -m stackha.lab.pdu relay`` as the PDU's login user.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Optional, Protocol, Union

    class Switchboard(Protocol):
        """What powers the nodes behind the outlets: the lab."""

        def power_state(self, node: str) -> str: ...

        def set_power(self, node: str, action: str) -> object: ...


RELAY_SOCKET = "\0stackha-lab-pdu"  # abstract: per network namespace, no file permissions
FIRMWARE = "v6.8.2"
PROMPT = "apc>"
EOL = "\r\n"
# Telnet command bytes: IAC, and the verbs that take an option byte.
IAC = 0xFF
WITH_OPTION = frozenset({0xFB, 0xFC, 0xFD, 0xFE})
SB, SE = 0xFA, 0xF0


class LineReader:
    """Lines from a byte stream, with telnet negotiation stripped and empty lines dropped.

    fence_apc drives the ``telnet`` binary through a pty, so each command arrives as ``cmd\\n\\n``
    and option negotiation bytes arrive first; both must be swallowed, or every answer is read
    one prompt late.
    """

    def __init__(self, receive: Callable[[], bytes]) -> None:
        self.receive = receive
        self.buffer = bytearray()

    def _clean(self, data: bytes) -> bytes:
        out = bytearray()
        index = 0
        while index < len(data):
            byte = data[index]
            if byte != IAC:
                out.append(byte)
                index += 1
                continue
            verb = data[index + 1] if index + 1 < len(data) else None
            if verb in WITH_OPTION:
                index += 3
            elif verb == SB:
                end = data.find(bytes([IAC, SE]), index)
                index = len(data) if end < 0 else end + 2
            elif verb == IAC:
                out.append(IAC)
                index += 2
            else:
                index += 2
        return bytes(out)

    def readline(self) -> Optional[str]:
        """The next non-empty line, or None at the end of the stream."""
        while True:
            for separator in (b"\n", b"\r"):
                position = self.buffer.find(separator)
                if position >= 0:
                    line = bytes(self.buffer[:position]).decode("utf-8", "replace").strip()
                    del self.buffer[: position + 1]
                    if line:
                        return line
                    break
            else:
                data = self.receive()
                if not data:
                    return None
                self.buffer.extend(self._clean(data))


class Outlets:
    """The PDU's outlets, on one unit or a daisy chain of up to four (Network Port Sharing).

    ``outlets[(unit, N)]`` is the node outlet N of that unit powers; unit 1 is the host, the one
    with the network connection. ``power`` switches nodes (the lab, or a test's switchboard).
    """

    def __init__(self, power: Switchboard, outlets: dict[tuple[int, int], str]) -> None:
        self.power = power
        self.outlets = outlets

    @classmethod
    def from_inventory(cls, power: Switchboard, outlets: dict[str, str]) -> Outlets:
        """From the inventory's ``{"N": node}`` (host unit) or ``{"U:N": node}`` keys."""
        parsed: dict[tuple[int, int], str] = {}
        for key, node in outlets.items():
            unit, _, number = key.rpartition(":")
            parsed[(int(unit or 1), int(number))] = node
        return cls(power, parsed)

    def resolve(self, text: str) -> tuple[int, list[int]]:
        """(unit, outlets) from ``3``, ``1,2``, ``1-3``, ``all``, names, ``2:3``, ``2:all``."""
        unit = 1
        head, colon, tail = text.partition(":")
        if colon and head.strip().isdigit():
            unit, text = int(head), tail
        here = {number: node for (u, number), node in self.outlets.items() if u == unit}
        if not here:
            raise KeyError(unit)
        if text.lower() == "all":
            return unit, sorted(here)
        numbers: list[int] = []
        for part in text.split(","):
            part = part.strip()
            if "-" in part and all(p.strip().isdigit() for p in part.split("-", 1)):
                low, high = (int(p) for p in part.split("-", 1))
                numbers.extend(range(low, high + 1))
            elif part.isdigit():
                numbers.append(int(part))
            else:
                named = [n for n, node in here.items() if node == part]
                if not named:
                    raise KeyError(part)
                numbers.extend(named)
        if any(n not in here for n in numbers):
            raise KeyError(text)
        return unit, numbers

    def name(self, unit: int, number: int) -> str:
        return self.outlets[(unit, number)]

    def state(self, unit: int, number: int) -> str:
        return "On" if self.power.power_state(self.outlets[(unit, number)]) == "on" else "Off"

    def switch(self, unit: int, number: int, action: str) -> None:
        self.power.set_power(self.outlets[(unit, number)], action)


class Session:
    """One CLI session: optional login, then commands until logout or end of stream."""

    def __init__(
        self,
        outlets: Outlets,
        reader: LineReader,
        send: Callable[[str], None],
        credentials: Optional[tuple[str, str]],
    ) -> None:
        self.outlets = outlets
        self.reader = reader
        self.send = send
        self.credentials = credentials

    def run(self) -> None:
        if self.credentials is not None and not self._login():
            return
        self.send(self._banner() + EOL + PROMPT)
        while True:
            line = self.reader.readline()
            if line is None:
                return
            words = line.split()
            command = words[0].lower()
            if command in ("quit", "exit", "bye", "logout", "4"):
                self.send("Bye." + EOL)
                return
            self.send(self._answer(command, words[1:]) + EOL + PROMPT)

    def _login(self) -> bool:
        for _ in range(3):
            self.send(EOL + "User Name : ")
            user = self.reader.readline()
            if user is None:
                return False
            self.send(EOL + "Password  : ")
            password = self.reader.readline()
            if password is None:
                return False
            if self.credentials == (user, password):
                return True
            time.sleep(0.2)  # as a device would; also keeps guessing slow
            self.send(EOL + "Authentication failed" + EOL)
        return False

    def _banner(self) -> str:
        return EOL.join(
            [
                "",
                "American Power Conversion".ljust(40)
                + "Network Management Card AOS".ljust(33)
                + FIRMWARE,
                "(c) Copyright 2016 All Rights Reserved".ljust(40)
                + "RPDU 2g Application".ljust(33)
                + FIRMWARE,
                "-" * 79,
                "Name      : stackha-lab-pdu                           User : apc",
                "",
                "Type ? for command listing",
                "",
            ]
        )

    def _answer(self, command: str, arguments: list[str]) -> str:
        if command in ("?", "help"):
            return "E000: Success" + EOL + "olStatus  olOn  olOff  olReboot  olName  quit"
        actions = {"olon": "on", "oloff": "off", "olreboot": "cycle"}
        if command not in ("olstatus", "olname", *actions):
            return "E101: Command Not Found"
        if not arguments:
            return "E102: Parameter Error"
        try:
            unit, numbers = self.outlets.resolve(" ".join(arguments))
        except KeyError:
            return "E102: Parameter Error"
        if command in actions:
            from stackha.lab.namespaces import LabError

            for number in numbers:
                try:
                    self.outlets.switch(unit, number, actions[command])
                except LabError as err:
                    # A boot that really failed: its reason in the PDU's log, APC's "command
                    # failed" to the caller (the connection stays up).
                    sys.stderr.write(f"outlet {number}: {command} FAILED: {err}\n")
                    sys.stderr.flush()
                    return "E100: Command failed"
            return "E000: Success"
        lines = ["E000: Success"]
        for number in numbers:
            name = self.outlets.name(unit, number)
            if command == "olstatus":
                lines.append(f" {number}: {name}: {self.outlets.state(unit, number)}")
            else:
                lines.append(f" {number}: {name}")
        return EOL.join(lines)


def serve(directory: str) -> int:
    """The namespace lab's PDU: telnet on its address, and the relay socket for SSH sessions."""
    from stackha.lab.lab import Lab

    lab = Lab(directory)
    return serve_outlets(lab, lab.inventory(), ssh_relay=True)


def serve_outlets(power: Switchboard, inventory: dict[str, object], ssh_relay: bool) -> int:
    """The PDU of a lab's ``inventory`` switching ``power`` (the namespace lab, or the Vagrant
    lab's VMs): telnet on its address and, with ``ssh_relay``, the relay socket for SSH
    sessions. Serves until killed."""
    pdu = inventory["pdu"]
    assert isinstance(pdu, dict)
    outlets = Outlets.from_inventory(power, dict(pdu["outlets"]))
    credentials = (str(pdu["username"]), str(pdu["password"]))

    def handler(login: Optional[tuple[str, str]]) -> type:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                connection: socket.socket = self.request

                def send(text: str) -> None:
                    connection.sendall(text.encode())

                try:
                    Session(outlets, LineReader(lambda: connection.recv(4096)), send, login).run()
                except OSError:
                    pass  # the client went away mid-session: nothing to clean up

        return Handler

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    telnet = socketserver.ThreadingTCPServer(
        (str(pdu["address"]), int(pdu["telnet_port"])), handler(credentials)
    )
    servers: list[socketserver.BaseServer] = [telnet]
    if ssh_relay:
        servers.append(socketserver.ThreadingUnixStreamServer(RELAY_SOCKET, handler(None)))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stderr.write(f"PDU listening on {pdu['address']}:{pdu['telnet_port']} (telnet)\n")
    sys.stderr.flush()
    threading.Event().wait()
    return 0


def relay() -> int:
    """The SSH forced command: copy this session to the PDU and back."""
    import os
    import select

    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(RELAY_SOCKET)
    except OSError as err:
        sys.stderr.write(f"PDU not reachable: {err}\n")
        return 1
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sources: list[Union[socket.socket, int]] = [connection, stdin]
    while True:
        ready, _, _ = select.select(sources, [], [])
        if connection in ready:
            data = connection.recv(4096)
            if not data:
                return 0
            os.write(stdout, data)
        if stdin in ready:
            data = os.read(stdin, 4096)
            if data:
                connection.sendall(data)
            else:
                connection.shutdown(socket.SHUT_WR)
                sources.remove(stdin)


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"] and len(args) == 2:
        return serve(args[1])
    if args == ["relay"]:
        return relay()
    sys.stderr.write("usage: python -m stackha.lab.pdu serve LAB_DIR | relay\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
