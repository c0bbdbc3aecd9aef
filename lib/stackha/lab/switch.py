"""The lab's network: a bridge in a network namespace of its own.

Nodes plug into the bridge through veth pairs; the BMC and PDU simulators listen on addresses of
the bridge itself. Nothing of the lab touches the host's network namespace, and nothing in it
has a default route: traffic stays between the lab's own addresses.
"""

from __future__ import annotations

from stackha.lab.namespaces import (
    LabError,
    NamespaceRunner,
    call_in_network_of,
    end_processes,
    start_init,
)
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    from stackha.clock import Deadline
    from stackha.process import ProcessTable
    from stackha.runner import Runner

    T = TypeVar("T")

IP = "/sbin/ip"
BRIDGE = "br0"
# The bridge's own MAC, set once: left to the kernel it follows the lowest MAC of its ports, so
# a crashed node's veth leaving (or a rebooted node's new one joining) changed it, and every
# node's ARP entry for the simulators' addresses on the bridge went wrong for 5-9 s — the fence
# devices did not answer just when a node had to be fenced (bench/README.md, openstack_stack.py).
BRIDGE_MAC = "02:00:5a:1a:b0:01"


class Switch:
    """The bridge namespace; ``init_pid`` is its tini, which holds it."""

    def __init__(self, runner: Runner, processes: ProcessTable, init_pid: int = 0) -> None:
        self.host_runner = runner
        self.processes = processes
        self.init_pid = init_pid

    @property
    def runner(self) -> NamespaceRunner:
        return NamespaceRunner(self.host_runner, self.init_pid, namespaces="n")

    def _ip(self, *argv: str, timeout: float = 10.0) -> None:
        try:
            self.runner.run([IP, *argv], timeout=timeout, check=True)
        except CommandError as err:
            raise LabError(f"ip {' '.join(argv)} in the lab switch: {err}") from err

    def create(self, address: str, prefix: int, deadline: Deadline, log_path: str) -> int:
        """Make the namespace and the bridge; returns the holder (unshare) pid."""
        # Its own PID namespace too: killing tini then ends its sleep as well (in the host's,
        # the sleep outlived every lab, re-parented to pid 1).
        holder, self.init_pid = start_init(
            self.host_runner, self.processes, ["--net", "--pid", "--fork"], deadline, log_path
        )
        try:
            self._ip("link", "set", "lo", "up")
            self._ip("link", "add", BRIDGE, "type", "bridge")
            self._ip("link", "set", BRIDGE, "address", BRIDGE_MAC)
            self._ip("addr", "add", f"{address}/{prefix}", "dev", BRIDGE)
            self._ip("link", "set", BRIDGE, "up")
        except BaseException:
            end_processes(self.processes, [self.init_pid, holder], deadline)
            raise
        return holder

    def add_address(self, address: str, prefix: int) -> None:
        """Another address on the bridge (a simulator listens on it)."""
        self._ip("addr", "add", f"{address}/{prefix}", "dev", BRIDGE)

    def plug(
        self, port: str, node_init_pid: int, node_runner: NamespaceRunner, address: str, prefix: int
    ) -> None:
        """Connect a node: a veth pair whose far end is the node's ``eth0``."""
        self._ip(
            "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", str(node_init_pid)
        )
        self._ip("link", "set", port, "master", BRIDGE)
        self._ip("link", "set", port, "up")
        for argv in (
            [IP, "link", "set", "lo", "up"],
            [IP, "addr", "add", f"{address}/{prefix}", "dev", "eth0"],
            [IP, "link", "set", "eth0", "up"],
        ):
            try:
                node_runner.run(argv, timeout=10, check=True)
            except CommandError as err:
                raise LabError(f"{' '.join(argv)} in node: {err}") from err

    def set_port(self, port: str, up: bool) -> None:
        """Cut (down) or restore (up) a node's link to the bridge."""
        self._ip("link", "set", port, "up" if up else "down")

    def port_is_up(self, port: str) -> bool:
        result = self.runner.run([IP, "-o", "link", "show", port], timeout=10)
        return result.ok and "state DOWN" not in result.stdout and ",UP" in result.stdout

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` in a thread of this process that is in the lab's network (see
        :func:`stackha.lab.namespaces.call_in_network_of`): an HTTP client, say, reaching the
        nodes and the virtual IP as a machine on the lab's network would."""
        return call_in_network_of(self.init_pid, function)
