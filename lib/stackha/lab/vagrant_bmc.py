"""Virtual BMCs and a PDU for the Vagrant lab's VMs: the namespace lab's simulators, powering VMs.

One process per VM, started by :mod:`stackha.lab.vagrant_lab` inside the hypervisor's network
and mount namespaces (where libvirtd and its bridges live), bound to the address the namespace
lab gives that node's BMC (.100+i, port 623) on the bridge of the VMs' cluster network::

    python3 -m stackha.lab.vagrant_bmc VAGRANT_LAB_DIR NODE
    python3 -m stackha.lab.vagrant_bmc VAGRANT_LAB_DIR --pdu

The second serves the lab's switched PDU (:mod:`stackha.lab.pdu`, its APC command line over
telnet, outlet i powering node i) at the namespace lab's PDU address (.99), switching the VMs
the same way: the second fencing level, ``fence_stackha_pdu``, as on the namespace lab.

It is :mod:`stackha.lab.bmc` — the same pyghmi server, the same cipher-suite-3 refusal, the same
log lines and Node Busy answers — with :class:`VirtualMachines` as what it powers: ``virsh``
``destroy`` (off: the VM's power cut, as fencing wants it), ``start`` (on), ``reset`` (reset),
both (cycle), ``domstate`` (status). Credentials come from the lab's inventory file, never from
the command line, so ``fence_stackha_ipmi`` and ``fence_ipmilan`` fence a VM exactly as they
fence a namespace node.

Why not virtualbmc (OpenStack's, also on pyghmi): Debian does not package it (runtime imports
are the distribution's packages only), it keeps its BMC passwords in files of its own under the
caller's home, and it would be a second BMC to test beside the one the namespace lab proves.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stackha.lab.namespaces import LabError
from stackha.runner import SubprocessRunner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner

VIRSH = "/usr/bin/virsh"
SYSTEM_URI = "qemu:///system"
# The Vagrantfile's libvirt.default_prefix: node1's domain is stackha-node1.
DOMAIN_PREFIX = "stackha-"
INVENTORY = "inventory.json"
PDU = "--pdu"  # main's argument that serves the lab's PDU instead of a node's BMC
VIRSH_TIMEOUT_S = 60.0
# virsh domstate's words for a domain whose power is off; every other state has power.
POWERED_OFF = ("shut off", "shutoff")


class VirtualMachines:
    """The power of the Vagrant lab's VMs through libvirt (run where libvirtd's socket is)."""

    def __init__(self, runner: Runner, directory: Path, prefix: str = DOMAIN_PREFIX) -> None:
        self.runner = runner
        self.directory = directory
        self.prefix = prefix

    def domain(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def power_state(self, name: str) -> str:
        """``on`` or ``off``; LabError when libvirt cannot tell (never a guess)."""
        result = self._virsh("domstate", name)
        if not result.ok:
            raise LabError(f"virsh domstate {self.domain(name)}: {result.output_line()}")
        return "off" if result.stdout.strip() in POWERED_OFF else "on"

    def set_power(self, name: str, action: str) -> str:
        """What a BMC does: ``off`` cuts the VM's power, ``on`` starts it, ``reset`` resets a
        running VM (starts one that is off, as a BMC's reset of a machine that is off powers it
        on), ``cycle`` does off then on. Returns the power state afterwards."""
        if action not in ("on", "off", "cycle", "reset"):
            raise LabError(f"unknown power action {action}")
        state = self.power_state(name)
        if action == "reset" and state == "on":
            self._must("reset", name)
            return self.power_state(name)
        if action in ("off", "cycle") and state == "on":
            self._must("destroy", name)
        if action in ("on", "cycle", "reset") and self.power_state(name) == "off":
            self._must("start", name)
        return self.power_state(name)

    def _must(self, verb: str, name: str) -> None:
        result = self._virsh(verb, name)
        if not result.ok:
            raise LabError(f"virsh {verb} {self.domain(name)}: {result.output_line()}")

    def _virsh(self, verb: str, name: str):  # type: ignore[no-untyped-def]
        return self.runner.run(
            [VIRSH, "-c", SYSTEM_URI, verb, self.domain(name)], timeout=VIRSH_TIMEOUT_S
        )


def main(argv: Optional[list[str]] = None) -> int:
    from stackha.lab.bmc import read_inventory, serve

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python3 -m stackha.lab.vagrant_bmc VAGRANT_LAB_DIR NODE|--pdu\n")
        return 2
    directory, node = Path(args[0]), args[1]
    machines = VirtualMachines(SubprocessRunner(), directory)
    if node != PDU:
        return serve(machines, directory / INVENTORY, node)
    from stackha.lab.pdu import serve_outlets

    inventory = read_inventory(directory / INVENTORY, "the PDU")
    if inventory is None:
        return 1
    # telnet only: the namespace lab's SSH side is an sshd in a mount namespace of its own
    return serve_outlets(machines, inventory, ssh_relay=False)


if __name__ == "__main__":
    raise SystemExit(main())
