"""Benchmark: how fast the namespace lab forms, what a node costs, how fast a VIP fails over.

It measures, in one run, on real Corosync + Pacemaker clusters built by ``stackha.lab``:

1. **Bring-up and memory.** For each size in ``--sizes`` (default 3, 5 and 9 nodes), one lab at a
   time, each torn down before the next: the wall time of ``Lab.up`` (namespaces, daemons, BMC
   and PDU simulators, until every node is online with a DC), split by the progress messages
   into "nodes booted", "simulators answering" and "formed". After ``--settle`` seconds it sums,
   per node, the PSS ("Pss:" of /proc/PID/smaps_rollup) and RSS of every process in the node,
   and reports the mean per node in MB (MiB). A node's processes are those in its PID namespace:
   corosync and pacemakerd are started by ``nsenter`` from the host, so on the host they are
   children of nsenter, not of the node's init, and walking the init's descendants
   (/proc/PID/task/TID/children) finds only tini and its sleep (shown in the report as a
   cross-check). The host-side helpers (unshare, the nsenter parents) and the node's BMC
   simulator are reported apart.

2. **VIP failover after a crash.** A 3-node lab with ``stonith-enabled=false``, an
   ``ocf:heartbeat:IPaddr2`` VIP at the subnet's .50 (monitor every 5 s) and
   ``python3 -m http.server`` on 0.0.0.0:``--port`` on every node. Each round finds the VIP's
   holder with crm_mon, starts a probe in the lab switch's network namespace, records t0,
   crashes the holder (``Lab.crash``: SIGKILL to everything on the node), and the probe then
   tries a TCP connect to VIP:port every 0.1 s (each attempt with a 0.1 s timeout) until one
   succeeds; meanwhile crm_mon on a survivor is polled until it shows the VIP started on a
   survivor. The failover time is first successful connect minus t0. The lab gets a process
   table that logs signals, so the report also shows when Lab.crash sent its first SIGKILL
   (within a millisecond of t0) and when it returned (it waits until every process of the node
   has been reaped, which can take longer than the kill). Between rounds the crashed
   node is powered back (``Lab.set_power(name, "reset")``), its HTTP server restarted, and the
   cluster left to settle. Beside the median it prints Corosync's ``token`` from the lab's
   corosync.conf (the floor), and the runtime token and consensus timeouts from
   corosync-cmapctl (corosync adds token_coefficient per node above two; a new membership forms
   only after token + consensus).

Every address it talks to is inside the lab (its own network namespaces); the lab is torn down
with ``Lab.down`` whatever happens. Run as root, on a checkout after ``make venv``::

    .venv/bin/python bench/lab_timing.py
    .venv/bin/python bench/lab_timing.py --sizes 3,5,9 --crash-rounds 3 --json lab-timing.json

Options: ``--sizes`` (default 3,5,9), ``--crash-rounds N`` (default 3; 0 skips the failover
test), ``--json FILE``, ``--dir DIR`` (the lab directory; default: in a temporary directory),
``--subnet``, ``--port``, ``--settle``, ``--up-timeout``, ``--failover-timeout``. Standard
library and stackha only; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from stackha.clock import Deadline, SystemClock
from stackha.lab.lab import DEFAULT_SUBNET, Lab, LabState, NodeState
from stackha.pacemaker.crm_mon import ClusterStatus
from stackha.process import ProcTable
from stackha.runner import BASE_ENV, Spawn

PCS = "/usr/sbin/pcs"
CRM_RESOURCE = "/usr/sbin/crm_resource"
CMAPCTL = "/usr/sbin/corosync-cmapctl"
SYSTEM_PYTHON = "/usr/bin/python3"
VIP_ID = "vip"
PROBE_INTERVAL_S = 0.1
MB = 1024.0  # kB per MB (MiB)

# Runs in the lab switch's network namespace: one connect to check the VIP answers before the
# crash ("ready"), then, once told "go" on stdin, a connect every INTERVAL seconds (each with
# that timeout) until one succeeds; prints the time.monotonic() of the success (the clock is
# the host's: nsenter -n does not enter a time namespace).
PROBE = """\
import socket, sys, time
address, port = sys.argv[1], int(sys.argv[2])
interval, limit = float(sys.argv[3]), float(sys.argv[4])
def answers(timeout):
    try:
        socket.create_connection((address, port), timeout).close()
        return True
    except OSError:
        return False
print("ready" if answers(1.0) else "silent", flush=True)
sys.stdin.readline()
start = time.monotonic()
attempts = 0
while time.monotonic() - start < limit:
    attempts += 1
    began = time.monotonic()
    if answers(interval):
        print("answered", repr(time.monotonic()), attempts, flush=True)
        sys.exit(0)
    time.sleep(max(0.0, began + interval - time.monotonic()))
print("timeout", attempts, flush=True)
sys.exit(1)
"""
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- memory -----------------------------------------------------------------------------------


def smaps_kb(pid: int) -> Optional[tuple[int, int]]:
    """(PSS, RSS) of a process in kB from /proc/PID/smaps_rollup, or None if it is gone."""
    pss = rss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError):
        return None
    if pss is None or rss is None:
        return None
    return pss, rss


def pid_namespace(pid: int) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(namespace: str) -> list[int]:
    """Every process on the host whose PID namespace is ``namespace``."""
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and pid_namespace(int(entry)) == namespace
    ]


def children(pid: int) -> list[int]:
    """Children of every thread of ``pid`` (/proc/PID/task/TID/children)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found += [int(word) for word in handle.read().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants, by the kernel's children lists."""
    seen: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.append(current)
        pending += children(current)
    return seen


@dataclass
class Usage:
    """Summed PSS and RSS (kB) of some processes, and how many of them still existed."""

    pss_kb: int = 0
    rss_kb: int = 0
    processes: int = 0


def usage(pids: list[int]) -> Usage:
    total = Usage()
    for pid in pids:
        sample = smaps_kb(pid)
        if sample is not None:
            total.pss_kb += sample[0]
            total.rss_kb += sample[1]
            total.processes += 1
    return total


@dataclass
class NodeMemory:
    name: str
    inside: Usage  # every process in the node's PID namespace
    commands: list[str]
    init_descendants: Usage  # the node's init and its descendants by /proc children lists
    host_helpers: Usage  # unshare and the nsenter parents of corosync and pacemakerd (host side)
    bmc: Usage  # the node's BMC simulator (in the lab switch)


def node_memory(node: NodeState) -> NodeMemory:
    if node.init_pid is None:
        raise RuntimeError(f"{node.name} is not running")
    namespace = pid_namespace(node.init_pid)
    if namespace is None:
        raise RuntimeError(f"{node.name}: init {node.init_pid} is gone")
    members = namespace_members(namespace)
    return NodeMemory(
        name=node.name,
        inside=usage(members),
        commands=sorted({name_of(pid) for pid in members}),
        init_descendants=usage(descendants(node.init_pid)),
        host_helpers=usage(list(node.helper_pids)),
        bmc=usage([node.bmc_pid] if node.bmc_pid else []),
    )


def name_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def mean_of(values: Iterable[float]) -> float:
    return statistics.mean(values)


# -- bring-up ---------------------------------------------------------------------------------


@dataclass
class UpResult:
    nodes: int
    up_s: float
    booted_s: Optional[float] = None  # last "nodeN: booted"
    simulators_s: Optional[float] = None  # "PDU: ..." (BMCs answer before it)
    forming_s: Optional[float] = None  # from simulators_s to all online with a DC
    events: list[tuple[float, str]] = field(default_factory=list)
    memory: list[NodeMemory] = field(default_factory=list)
    mean_pss_mb: float = 0.0
    mean_rss_mb: float = 0.0
    mean_processes: float = 0.0
    mean_helpers_pss_mb: float = 0.0
    mean_bmc_pss_mb: float = 0.0
    mean_init_descendants: float = 0.0


class Recorder:
    """A Lab progress callback that keeps each message with its time since ``start``."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def reset(self) -> None:
        self.start = time.monotonic()
        self.events = []

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        self.events.append((round(elapsed, 3), message))
        log(f"  +{elapsed:6.2f}s {message}")


def measure_up(lab: Lab, recorder: Recorder, nodes: int, args: argparse.Namespace) -> UpResult:
    log(f"lab up: {nodes} nodes in {lab.directory}")
    recorder.reset()
    started = time.monotonic()
    lab.up(nodes=nodes, subnet=args.subnet, timeout=args.up_timeout)
    result = UpResult(nodes=nodes, up_s=time.monotonic() - started, events=list(recorder.events))
    booted = [t for t, message in result.events if ": booted at " in message]
    result.booted_s = max(booted) if booted else None
    simulators = [t for t, message in result.events if message.startswith("PDU:")]
    result.simulators_s = simulators[0] if simulators else None
    if result.simulators_s is not None:
        result.forming_s = result.up_s - result.simulators_s
    log(f"  all {nodes} online with a DC after {result.up_s:.2f}s; settling {args.settle:g}s")
    time.sleep(args.settle)
    result.memory = [node_memory(node) for node in lab.load().nodes]
    memory = result.memory
    result.mean_pss_mb = mean_of(m.inside.pss_kb for m in memory) / MB
    result.mean_rss_mb = mean_of(m.inside.rss_kb for m in memory) / MB
    result.mean_processes = mean_of(m.inside.processes for m in memory)
    result.mean_helpers_pss_mb = mean_of(m.host_helpers.pss_kb for m in memory) / MB
    result.mean_bmc_pss_mb = mean_of(m.bmc.pss_kb for m in memory) / MB
    result.mean_init_descendants = mean_of(m.init_descendants.processes for m in memory)
    log(f"  memory: {result.mean_pss_mb:.1f} MB PSS, {result.mean_rss_mb:.1f} MB RSS per node")
    return result


# -- failover ---------------------------------------------------------------------------------


@dataclass
class Round:
    round: int
    crashed: str
    new_holder: Optional[str]
    answered_s: float  # t0 (just before Lab.crash) to the first successful connect to the VIP
    crm_mon_s: Optional[float]  # t0 to crm_mon on a survivor showing the VIP started there
    attempts: int  # connect attempts the probe made
    kill_s: Optional[float]  # t0 to the first SIGKILL Lab.crash sent (to the node's init)
    crash_call_s: float  # how long Lab.crash took: SIGKILL, then waiting until all are reaped


@dataclass
class Failover:
    vip: str
    prefix: int
    port: int
    token_conf_s: Optional[float]
    runtime_token_s: Optional[float] = None
    runtime_consensus_s: Optional[float] = None
    rounds: list[Round] = field(default_factory=list)
    median_s: Optional[float] = None
    median_crm_mon_s: Optional[float] = None


def token_from_conf(path: Path) -> Optional[float]:
    """``token:`` of the totem section, in seconds."""
    match = re.search(r"^\s*token:\s*(\d+)\s*$", path.read_text(), re.MULTILINE)
    return int(match.group(1)) / 1000.0 if match else None


def cmap_seconds(lab: Lab, node: str, key: str) -> Optional[float]:
    result = lab.node_runner(node).run([CMAPCTL, "-g", key], timeout=10)
    match = re.search(r"=\s*(\d+)\s*$", result.stdout.strip())
    return int(match.group(1)) / 1000.0 if result.ok and match else None


def running(state: LabState, names: Optional[list[str]] = None) -> list[NodeState]:
    return [n for n in state.nodes if n.init_pid is not None and (names is None or n.name in names)]


def status_from(lab: Lab, names: Optional[list[str]] = None) -> Optional[ClusterStatus]:
    """The cluster as the first of ``names`` (default: any running node) that can tell sees it."""
    state = lab.load()
    for node in running(state, names):
        status = lab.node(node.name).status()
        if status is not None:
            return status
    return None


def vip_holder(status: Optional[ClusterStatus]) -> Optional[str]:
    """The node the VIP is started on, if exactly one and not failed."""
    if status is None:
        return None
    started = [r for r in status.instances(VIP_ID) if r.active and r.role == "Started"]
    if len(started) != 1 or started[0].failed or len(started[0].nodes) != 1:
        return None
    return started[0].nodes[0]


def answers(lab: Lab, address: str, port: int) -> bool:
    """Whether a TCP connect to address:port from the lab switch succeeds."""
    switch = lab.switch()
    return switch.runner.run(
        [sys.executable, "-I", "-c", CONNECT, address, str(port)], timeout=10
    ).ok


def wait_for(ready: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = Deadline(SystemClock(), seconds)
    while not ready():
        if deadline.expired():
            raise RuntimeError(f"{what}: not within {seconds:g}s")
        deadline.sleep(0.2)


def run_in(lab: Lab, node: str, argv: list[str], timeout: float = 120.0) -> str:
    result = lab.node_runner(node).run(argv, timeout=timeout)
    if not result.ok:
        raise RuntimeError(
            f"{node}: {' '.join(argv)}: exit {result.returncode}: {result.output_line()}"
        )
    return result.stdout


def start_http(lab: Lab, name: str, port: int, workdir: Path) -> None:
    """python3 -m http.server on 0.0.0.0:port in the node; it dies with the node."""
    docroot = workdir / "docroot"
    docroot.mkdir(exist_ok=True)
    argv = (SYSTEM_PYTHON, "-m", "http.server", "--bind", "0.0.0.0", "--directory", str(docroot))
    lab.node_runner(name).spawn(
        Spawn((*argv, str(port)), output_path=str(workdir / f"http-{name}.log"))
    )
    address = next(n.address for n in lab.load().nodes if n.name == name)
    wait_for(lambda: answers(lab, address, port), 30, f"http.server on {name}")


def settle(lab: Lab, vip: str, port: int) -> str:
    """Wait until Pacemaker is idle and the VIP answers from one node; returns that node."""
    node = running(lab.load())[0].name
    run_in(lab, node, [CRM_RESOURCE, "--wait", "--timeout=120s"], timeout=150)
    holder: list[Optional[str]] = [None]

    def ready() -> bool:
        holder[0] = vip_holder(status_from(lab))
        return holder[0] is not None and answers(lab, vip, port)

    wait_for(ready, 60, "VIP started on one node and answering")
    assert holder[0] is not None
    return holder[0]


class SignalLog(ProcTable):
    """The real process table, keeping the time of every signal the lab sends through it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[float, int, int]] = []

    def signal(self, pid: int, signum: int) -> None:
        self.sent.append((time.monotonic(), pid, signum))
        super().signal(pid, signum)

    def first_kill_after(self, t0: float) -> Optional[float]:
        times = [t for t, _, signum in self.sent if t >= t0 and signum == signal.SIGKILL]
        return min(times) - t0 if times else None


def crash_round(lab: Lab, number: int, vip: str, port: int, limit: float) -> Round:
    holder = settle(lab, vip, port)
    state = lab.load()
    survivors = [n.name for n in state.nodes if n.name != holder]
    probe_argv = [sys.executable, "-I", "-c", PROBE, vip, str(port), str(PROBE_INTERVAL_S)]
    argv = lab.switch().runner.wrap([*probe_argv, str(limit)])
    probe = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(BASE_ENV),
        close_fds=True,
    )
    assert probe.stdin is not None and probe.stdout is not None
    try:
        first = probe.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"the VIP {vip}:{port} does not answer before the crash ({first!r})")
        log(f"round {number}: crashing {holder} (holds {vip})")
        t0 = time.monotonic()
        lab.crash(holder)
        crash_call_s = time.monotonic() - t0
        kill_s = (
            lab.processes.first_kill_after(t0) if isinstance(lab.processes, SignalLog) else None
        )
        probe.stdin.write("go\n")
        probe.stdin.flush()
        deadline = Deadline(SystemClock(), limit + 30)
        crm_mon_s: Optional[float] = None
        new_holder = None
        while crm_mon_s is None or probe.poll() is None:
            if crm_mon_s is None:
                seen = vip_holder(status_from(lab, survivors))
                if seen in survivors:
                    crm_mon_s, new_holder = time.monotonic() - t0, seen
            if deadline.expired():
                raise RuntimeError(f"round {number}: no failover within {deadline.seconds:g}s")
            time.sleep(0.1)
        words = probe.stdout.read().split()
    finally:
        if probe.poll() is None:
            probe.kill()  # our own child, by its pid
        probe.wait()
    if probe.returncode != 0 or len(words) != 3 or words[0] != "answered":
        raise RuntimeError(f"round {number}: probe gave up: {' '.join(words)}")
    result = Round(
        round=number,
        crashed=holder,
        new_holder=new_holder,
        answered_s=float(words[1]) - t0,
        crm_mon_s=crm_mon_s,
        attempts=int(words[2]),
        kill_s=kill_s,
        crash_call_s=crash_call_s,
    )
    log(
        f"round {number}: VIP answered after {result.answered_s:.2f}s "
        f"(crm_mon: on {new_holder} after {crm_mon_s:.2f}s)"
    )
    return result


def measure_failover(lab: Lab, args: argparse.Namespace, workdir: Path) -> Failover:
    log(f"failover: 3-node lab in {lab.directory}")
    lab.up(nodes=3, subnet=args.subnet, timeout=args.up_timeout)
    network = ipaddress.ip_network(args.subnet)
    vip, port = str(network[50]), args.port
    result = Failover(
        vip=vip,
        prefix=network.prefixlen,
        port=port,
        token_conf_s=token_from_conf(lab.directory / "node1/etc/corosync/corosync.conf"),
        runtime_token_s=cmap_seconds(lab, "node1", "runtime.config.totem.token"),
        runtime_consensus_s=cmap_seconds(lab, "node1", "runtime.config.totem.consensus"),
    )
    run_in(lab, "node1", [PCS, "property", "set", "stonith-enabled=false"])
    run_in(
        lab,
        "node1",
        [
            PCS,
            "resource",
            "create",
            VIP_ID,
            "ocf:heartbeat:IPaddr2",
            f"ip={vip}",
            f"cidr_netmask={network.prefixlen}",
            "op",
            "monitor",
            "interval=5s",
            "--wait=60",
        ],
    )
    for node in lab.load().nodes:
        start_http(lab, node.name, port, workdir)
    for number in range(1, args.crash_rounds + 1):
        done = crash_round(lab, number, vip, port, args.failover_timeout)
        result.rounds.append(done)
        log(f"round {number}: powering {done.crashed} back (reset)")
        lab.set_power(done.crashed, "reset")
        lab.wait_online(Deadline(SystemClock(), args.up_timeout))
        start_http(lab, done.crashed, port, workdir)
    result.median_s = statistics.median(r.answered_s for r in result.rounds)
    crm = [r.crm_mon_s for r in result.rounds if r.crm_mon_s is not None]
    result.median_crm_mon_s = statistics.median(crm) if crm else None
    return result


# -- report -----------------------------------------------------------------------------------


def command_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - an argument list, never a shell
            argv, capture_output=True, text=True, timeout=10, env=dict(BASE_ENV)
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def host_info() -> dict[str, object]:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) // 1024} MB"
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "corosync": command_version(["/usr/sbin/corosync", "-v"]),
        "pacemaker": command_version(["/usr/sbin/pacemakerd", "--version"]),
    }


def seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(host: dict[str, object], ups: list[UpResult], failover: Optional[Failover]) -> str:
    lines = [
        "stackha namespace lab timing",
        f"host: {host['cpus']} CPUs, {host['memory']}, Linux {host['kernel']}",
        f"      {host['corosync']}; {host['pacemaker']}",
        "",
    ]
    if ups:
        lines += [
            "Lab up: seconds from the call until every node is online with a DC ('booted': last",
            "node's namespaces and daemons started; 'sims': BMC and PDU simulators answering;",
            "'forming': sims to all online). Memory per node: mean over the nodes of the summed",
            "PSS (and RSS) of every process in the node's PID namespace, in MB (MiB); 'outside':",
            "per node, the host-side unshare and nsenter helpers and the node's BMC simulator.",
            "",
            f"{'nodes':>5} {'up':>6} {'booted':>7} {'sims':>6} {'forming':>8} | "
            f"{'PSS':>6} {'(min-max)':>13} {'RSS':>6} {'procs':>5} | {'outside PSS':>11}",
        ]
        for up in ups:
            pss = [m.inside.pss_kb / MB for m in up.memory] or [0.0]
            outside = up.mean_helpers_pss_mb + up.mean_bmc_pss_mb
            lines.append(
                f"{up.nodes:>5} {up.up_s:>6.2f} {seconds(up.booted_s):>7} "
                f"{seconds(up.simulators_s):>6} {seconds(up.forming_s):>8} | "
                f"{up.mean_pss_mb:>6.1f} {f'({min(pss):.1f}-{max(pss):.1f})':>13} "
                f"{up.mean_rss_mb:>6.1f} {up.mean_processes:>5.1f} | {outside:>11.1f}"
            )
        first = ups[0]
        commands = first.memory[0].commands if first.memory else []
        walked = sorted({f"{u.mean_init_descendants:g}" for u in ups})
        lines += [
            "",
            *textwrap.wrap(f"in a node: {', '.join(commands)}", 100, subsequent_indent="  "),
            f"outside, {ups[-1].nodes} nodes: helpers {ups[-1].mean_helpers_pss_mb:.1f} MB, "
            f"BMC simulator {ups[-1].mean_bmc_pss_mb:.1f} MB PSS per node",
            f"cross-check: walking each node init's descendants finds {'/'.join(walked)} "
            "processes (tini, sleep):",
            "corosync and pacemakerd are children of nsenter on the host, not of the node's init",
            "",
        ]
    if failover:
        lines += [
            "VIP failover: 3 nodes, stonith-enabled=false, IPaddr2 "
            f"{failover.vip}/{failover.prefix} with monitor 5s,",
            f"http.server on :{failover.port} on every node. A probe in the lab switch tries "
            f"{failover.vip}:{failover.port}",
            f"every {PROBE_INTERVAL_S:g}s; t0 is just before Lab.crash(holder); 'answers' is t0 to "
            "the first connect;",
            "'crm_mon' is t0 to crm_mon on a survivor showing the VIP started there; 'SIGKILL'",
            "is t0 to the first SIGKILL Lab.crash sent, 'returned' t0 to Lab.crash returning.",
            "",
            f"{'round':>5} {'crashed':>8} {'new holder':>11} {'answers (s)':>12} "
            f"{'crm_mon (s)':>12} {'SIGKILL (s)':>12} {'returned (s)':>13}",
        ]
        for r in failover.rounds:
            kill = "-" if r.kill_s is None else f"{r.kill_s:.4f}"
            lines.append(
                f"{r.round:>5} {r.crashed:>8} {r.new_holder or '-':>11} {r.answered_s:>12.2f} "
                f"{seconds(r.crm_mon_s):>12} {kill:>12} {r.crash_call_s:>13.3f}"
            )
        lines += [
            "",
            f"median: the VIP answers {seconds(failover.median_s)} s after the crash "
            f"(crm_mon: {seconds(failover.median_crm_mon_s)} s)",
            f"floor:  corosync token {seconds(failover.token_conf_s)} s (corosync.conf); "
            f"at runtime token {seconds(failover.runtime_token_s)} s",
            f"        + consensus {seconds(failover.runtime_consensus_s)} s = "
            f"{seconds(runtime_floor(failover))} s before a new membership (corosync-cmapctl)",
        ]
    return "\n".join(lines) + "\n"


def runtime_floor(failover: Failover) -> Optional[float]:
    if failover.runtime_token_s is None or failover.runtime_consensus_s is None:
        return None
    return failover.runtime_token_s + failover.runtime_consensus_s


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="3,5,9", help="lab sizes to bring up (default 3,5,9)")
    parser.add_argument(
        "--crash-rounds", type=int, default=3, help="VIP failover rounds (default 3; 0: skip)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    parser.add_argument("--dir", help="the lab directory (default: in a temporary directory)")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"default {DEFAULT_SUBNET}")
    parser.add_argument("--port", type=int, default=8000, help="the HTTP port (default 8000)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="seconds after up before memory (default 5)"
    )
    parser.add_argument(
        "--up-timeout", type=float, default=600.0, help="seconds for a lab up (default 600)"
    )
    parser.add_argument(
        "--failover-timeout", type=float, default=120.0, help="seconds per round (default 120)"
    )
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(word) for word in args.sizes.split(",") if word.strip()]
    except ValueError:
        parser.error(f"--sizes: not a list of numbers: {args.sizes}")
    if args.crash_rounds < 0:
        parser.error("--crash-rounds must be 0 or more")
    return args


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: the lab goes down


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root: run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="stackha-lab-timing-"))
    recorder = Recorder()
    lab = Lab(args.dir or str(workdir / "lab"), processes=SignalLog(), progress=recorder)
    host = host_info()
    ups: list[UpResult] = []
    failover: Optional[Failover] = None
    try:
        for size in args.size_list:
            try:
                ups.append(measure_up(lab, recorder, size, args))
            finally:
                log("lab down")
                lab.down()
        if args.crash_rounds:
            try:
                recorder.reset()
                failover = measure_failover(lab, args, workdir)
            finally:
                log("lab down")
                lab.down()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(host, ups, failover), end="")
    if args.json:
        data = {
            "host": host,
            "lab_up": [asdict(up) for up in ups],
            "failover": asdict(failover) if failover else None,
        }
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
