"""A BMC simulator for one lab node: IPMI 2.0 (lanplus) over UDP, through pyghmi's BMC server.

Run by the lab, one process per node, inside the lab switch's network namespace and bound to
that node's BMC address: ``python -m stackha.lab.bmc LAB_DIR NODE``. Power off kills every
process of the node (a node that is off is really off); power on boots it (its cluster daemons
start after the lab's POST delay; the BMC says "on" from the power-on); reset and cycle do both;
status reports what the lab records. Credentials come from the lab's inventory file, never from
the command line. Every power command and its outcome is a line of the BMC's log
(``LAB_DIR/bmc-NODE.log``), a failed one with its reason.

A BMC answers Node Busy (completion code 0xC0) only when the node's boot really failed — and,
for tests, when the lab-only knob :func:`set_busy_power_ons` says so: the file
``LAB_DIR/bmc-NODE.test-busy-power-ons`` holds how many of the next power-ons it refuses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Protocol

    class PowerControl(Protocol):
        """What a BMC powers: the namespace lab (stackha.lab.lab.Lab) or the Vagrant lab's VMs
        (stackha.lab.vagrant_bmc.VirtualMachines). ``set_power`` raises LabError when the
        action failed; ``directory`` holds the lab-only test knob."""

        directory: Path

        def set_power(self, name: str, action: str) -> str: ...

        def power_state(self, name: str) -> str: ...


# IPMI completion codes.
OK = 0
NODE_BUSY = 0xC0
BUSY_KNOB_SUFFIX = ".test-busy-power-ons"
POWER_ON_ACTIONS = ("on", "cycle", "reset")


def busy_knob(directory: str, node: str) -> Path:
    """The lab-only test knob of a node's BMC (see the module's description)."""
    return Path(directory) / f"bmc-{node}{BUSY_KNOB_SUFFIX}"


def set_busy_power_ons(directory: str, node: str, count: int) -> None:
    """For tests: the BMC of ``node`` answers Node Busy to its next ``count`` power-ons, as
    real BMCs do now and then, and does nothing for them."""
    busy_knob(directory, node).write_text(f"{count}\n")


def take_busy_power_on(directory: str, node: str) -> bool:
    """Whether the knob asks this power-on to be refused; counts it down if so."""
    knob = busy_knob(directory, node)
    try:
        left = int(knob.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    if left <= 0:
        knob.unlink(missing_ok=True)
        return False
    knob.write_text(f"{left - 1}\n")
    return True


def log(line: str) -> None:
    stamp = time.strftime("%H:%M:%S", time.localtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    sys.stderr.write(f"{stamp} {line}\n")
    sys.stderr.flush()


# What the lab's BMC overrides or calls in pyghmi's Bmc: the same in pyghmi 1.5.34, 1.5.70 and
# 1.6.19 (tests/package proves each). Without them the BMC could not power anything.
BMC_HOOKS = (
    "listen",
    "get_chassis_status",
    "get_power_state",
    "power_off",
    "power_on",
    "power_cycle",
    "power_reset",
    "power_shutdown",
)
BMC_ARGUMENTS = ("authdata", "port", "address")


def make_bmc_class() -> type:
    """Build the pyghmi Bmc subclass (pyghmi is imported only in the simulator process).

    Raises LabError, naming what is missing, when pyghmi is not installed or its Bmc lacks what
    the lab's BMC overrides. Where pyghmi's server session has no Open Session hook to refuse
    cipher suites other than 3, the BMC runs without the refusal and logs a line saying so.
    """
    from stackha.fencing.ipmi import MINIMUM_PYGHMI, lacking_arguments, pyghmi_version
    from stackha.lab.namespaces import LabError

    try:
        import pyghmi.ipmi.bmc as bmc
        import pyghmi.ipmi.private.serversession as serversession
    except ImportError as error:
        if getattr(error, "name", None) == "pyghmi":
            raise LabError("pyghmi is not installed (apt install python3-pyghmi)") from None
        raise LabError(f"pyghmi {pyghmi_version()} cannot be imported: {error}") from None
    lacks = [f"Bmc.{name}()" for name in BMC_HOOKS if not callable(getattr(bmc.Bmc, name, None))]
    lacks += [
        f"Bmc({name}=...)"
        for name in lacking_arguments(getattr(bmc.Bmc, "__init__", None), BMC_ARGUMENTS)
    ]
    if lacks:
        raise LabError(
            f"pyghmi {pyghmi_version()} lacks {', '.join(lacks)}; the lab's BMC needs pyghmi >= "
            f"{MINIMUM_PYGHMI}"
        )

    class CipherSuite3Session(serversession.ServerSession):  # type: ignore[misc]
        """pyghmi's server speaks only cipher suite 3 but answers any Open Session as accepted;
        pyghmi's own client proposes suite 17 first and then crashes on SHA-1 replies. Refuse
        anything but suite 3's algorithms (RMCP+ status 0x11, no matching cipher suite) so
        clients fall back to suite 3, as real BMCs make them."""

        def create_open_session_response(self, request):  # type: ignore[no-untyped-def]
            if request[12] & 0x3F != 1 or request[20] & 0x3F != 1:
                return bytearray([request[0], 0x11, 0, 0]) + request[4:8]
            return super().create_open_session_response(request)

    if callable(getattr(serversession.ServerSession, "create_open_session_response", None)):
        serversession.ServerSession = CipherSuite3Session
    else:
        log(
            f"pyghmi {pyghmi_version()}: its server session has no create_open_session_response "
            "to refuse cipher suites other than 3: this BMC accepts every Open Session, as "
            "pyghmi does (a client that proposes suite 17 first may fail to log in)"
        )

    class LabBmc(bmc.Bmc):  # type: ignore[misc]
        def __init__(
            self,
            power: PowerControl,
            node: str,
            authdata: dict[str, str],
            address: str,
            port: int,
        ) -> None:
            super().__init__(authdata, port=port, address=address)
            self.power = power
            self.node = node

        def _act(self, action: str) -> int:
            directory = str(self.power.directory)
            if action in POWER_ON_ACTIONS and take_busy_power_on(directory, self.node):
                log(f"{self.node}: power {action}: Node Busy (test knob {BUSY_KNOB_SUFFIX})")
                return NODE_BUSY
            started = time.monotonic()
            try:
                state = self.power.set_power(self.node, action)
            except LabError as err:
                # A boot that really failed: the reason here, Node Busy to the caller (which
                # may ask again).
                log(f"{self.node}: power {action} FAILED: {err}")
                return NODE_BUSY
            log(f"{self.node}: power {action}: {state} in {time.monotonic() - started:.2f}s")
            return OK

        def get_power_state(self) -> str:
            return self.power.power_state(self.node)

        def get_chassis_status(self, session):  # type: ignore[no-untyped-def]
            # A state that cannot be read is an error to the client, never a guess.
            try:
                return super().get_chassis_status(session)
            except LabError as err:
                log(f"{self.node}: power status FAILED: {err}")
                return session.send_ipmi_response(code=NODE_BUSY)

        def power_off(self) -> int:
            return self._act("off")

        def power_on(self) -> int:
            return self._act("on")

        def power_cycle(self) -> int:
            return self._act("cycle")

        def power_reset(self) -> int:
            return self._act("reset")

        def power_shutdown(self) -> int:
            # A soft shutdown of a lab node is a hard one: nothing inside listens for ACPI.
            return self._act("off")

    return LabBmc


def read_inventory(path: Path, who: str) -> Optional[dict[str, Any]]:
    """The lab's inventory file for a simulator (``who``: "BMC of node1", "the PDU"), or None
    after one line of log saying why it cannot start."""
    import json

    try:
        inventory = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        log(f"{who} cannot start: the lab's inventory: {err}")
        return None
    if not isinstance(inventory, dict):
        log(f"{who} cannot start: the lab's inventory {path} is not a JSON object")
        return None
    return inventory


def serve(power: PowerControl, inventory_path: Path, node: str) -> int:
    """Serve the BMC of ``node`` (its entry in the lab's inventory file) until killed; 1 with
    one line of log when pyghmi cannot run it or the inventory cannot be read or lacks it."""
    from stackha.lab.namespaces import LabError

    try:
        bmc_class = make_bmc_class()
    except LabError as error:
        log(f"BMC of {node} cannot start: {error}")
        return 1
    inventory = read_inventory(inventory_path, f"BMC of {node}")
    if inventory is None:
        return 1
    nodes = inventory.get("nodes", [])
    assert isinstance(nodes, list)
    entry = next((n for n in nodes if n["name"] == node), None)
    if entry is None:
        log(f"BMC of {node} cannot start: no node {node} in the lab's inventory")
        return 1
    credentials = entry["bmc"]
    server = bmc_class(
        power,
        node,
        {credentials["username"]: credentials["password"]},
        credentials["address"],
        int(credentials["port"]),
    )
    log(f"BMC of {node} listening on {credentials['address']}:{credentials['port']}")
    server.listen()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m stackha.lab.bmc LAB_DIR NODE\n")
        return 2
    directory, node = args
    from stackha.lab.lab import Lab

    lab = Lab(directory)
    return serve(lab, lab.inventory_path, node)


if __name__ == "__main__":
    raise SystemExit(main())
