"""Benchmark: fence_stackha_ipmi next to fence_ipmilan, ``status`` and ``reboot``, one BMC.

What it measures, in one run and against the same BMC simulator (the IPMI 2.0 BMC of node2 in a
2-node namespace lab, see ``stackha.lab``):

- ``status`` of /usr/sbin/fence_stackha_ipmi (ours, pyghmi's session layer) and of
  /usr/sbin/fence_ipmilan (Debian fence-agents, which runs ipmitool), ``--runs`` calls each
  (default 20);
- ``reboot`` of both, ``--reboot-runs`` calls each (default 5): a real power cycle of node2,
  since the lab's BMC kills the node on "off" and boots it on "on" before it answers;
- ``nsenter /bin/true``, the cost of the wrapper alone (see below).

How: it brings up a 2-node lab in a temporary directory (``--subnet``, default 192.168.220.0/24;
``Lab.up`` installs the stackha Debian package unless it is installed, and ``Lab.down`` purges
it again if so, so /usr/sbin/fence_stackha_ipmi is the package's: ``#!/usr/bin/python3 -I``,
the distribution's pyghmi), and runs every agent inside
the lab switch's network namespace, the only place the BMCs are reachable, as
``nsenter -t PID -n -- AGENT``, with its options on stdin exactly as pacemaker-fenced sends
them (``ip=``, ``username=``, ``password=``, ``action=``; ``lanplus=1`` for both, so the
comparison is like for like and no password is on our command line). The nsenter wrapper costs
both agents the same; its own cost is the ``nsenter /bin/true`` row. Calls are interleaved
between the agents (the order alternates each round) after one warm-up call of each; reboots
are ``--gap`` seconds apart (default 0.5). Every call must succeed or the benchmark aborts with
the agent's output: status must exit 0 and print "Status: ON", reboot must exit 0 and print
"Success: Rebooted" (stderr is ignored for success: fence_ipmilan prints a DeprecationWarning).
After each reboot it also checks in the lab's state that node2 really went down and came back
(a new init pid, power on).

Per call it records the wall time (time.perf_counter from spawn to reap) and the CPU time (user +
sys) of the child and of the descendants it waited for (ipmitool, for fence_ipmilan), from the
child's own rusage (os.wait4); the BMC simulator's work is in neither. The
resource.getrusage(RUSAGE_CHILDREN) delta around each call is recorded too, as a cross-check:
it would also count any other child of this process reaped during the call (the lab's
processes are children of this one, and a reboot kills some), so the report says in how many
calls the two differ by more than 1 ms.

It prints medians, p90s and maxima, how many calls took over three times their median (the tail
a median hides), the ratios of medians (ours / fence_ipmilan), and whether the issue's aims are
met (reported, not asserted): ``status`` at most half of fence_ipmilan's wall time, and
a verified ``reboot`` under one second on this instantly switching simulator. Last, the import
cost of our agent's path, from ``-X importtime`` added to the agent's own ``#!`` line: with
``action=metadata`` (on the host; no BMC) whether ``pyghmi.ipmi.command`` is imported (it must
not be) and whether ``pyghmi.ipmi.private.session`` is (only a login imports it), then the
same for one ``status`` call in the lab, with the cumulative import time of the session module,
and whether the ``cryptography`` package's Rust bindings were loaded (they must not be: the
agent gives pyghmi AES from libcrypto, see ``stackha.fencing.openssl_aes``).

The lab is torn down with ``Lab.down`` whatever happens (also on Ctrl-C and SIGTERM); every
connection stays inside the lab's own namespaces. Run as root, on a checkout after
``make venv`` (about a minute)::

    make bench
    .venv/bin/python bench/fence_ipmi.py --runs 20 --reboot-runs 5 --json fence-ipmi.json

Options: ``--runs N`` (status calls per agent, default 20), ``--reboot-runs N`` (default 5),
``--gap S`` (seconds between reboots, default 0.5), ``--json FILE``, ``--subnet``,
``--up-timeout``. Standard library and stackha only; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py.
from measure import BenchError, agent_interpreter
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError

AGENT = "/usr/sbin/fence_stackha_ipmi"
INCUMBENT = "/usr/sbin/fence_ipmilan"
TRUE = "/bin/true"
OURS = "fence_stackha_ipmi"
THEIRS = "fence_ipmilan"
FLOOR = "nsenter /bin/true"
NODE = "node2"  # the node whose BMC is measured; rebooting it power-cycles it
DEFAULT_SUBNET = "192.168.220.0/24"
CALL_TIMEOUT = 60.0
COMMAND_MODULE = "pyghmi.ipmi.command"
SESSION_MODULE = "pyghmi.ipmi.private.session"
RUST_MODULE = "cryptography.hazmat.bindings._rust"
STATUS_OUTPUT = "Status: ON"
REBOOT_OUTPUT = "Success: Rebooted"
STATUS_AIM = 0.5  # ours / fence_ipmilan, median wall time
REBOOT_AIM_S = 1.0

# "import time:       946 |       2880 | stackha.services.haproxy"; nesting is two spaces a level.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


@dataclass
class Call:
    returncode: int
    stdout: str
    stderr: str
    wall: float  # seconds, spawn to reap
    cpu: float  # seconds, user + sys of the child and what it waited for (os.wait4)
    children_delta: float  # seconds, the RUSAGE_CHILDREN delta around the call (cross-check)


@dataclass
class Series:
    name: str
    action: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    children_delta: list[float] = field(default_factory=list)

    def add(self, call: Call) -> None:
        self.wall.append(call.wall)
        self.cpu.append(call.cpu)
        self.children_delta.append(call.children_delta)


@dataclass
class Imports:
    command: bool  # pyghmi.ipmi.command imported
    rust: bool  # cryptography's Rust bindings imported (16 ms; libcrypto through ctypes instead)
    session_ms: Optional[float]  # cumulative import ms of pyghmi.ipmi.private.session, if any
    total_ms: float  # cumulative ms of every top-level import


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_env() -> dict[str, str]:
    """A clean environment, close to what pacemaker-fenced gives an agent."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def call(argv: list[str], stdin: str, timeout: float = CALL_TIMEOUT) -> Call:
    """Run argv with ``stdin`` to completion: its output, wall time and its own CPU time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=base_env()
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        reaped = False
        try:
            assert process.stdin is not None
            try:
                process.stdin.write(stdin.encode())
                process.stdin.close()
            except BrokenPipeError:
                pass  # it exited without reading: its exit code tells
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            reaped = True
        finally:
            timer.cancel()
            if not reaped:  # interrupted: leave nothing of ours behind
                process.kill()
                process.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Call(
            returncode=process.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            wall=wall,
            cpu=cpu_seconds(usage),
            children_delta=cpu_seconds(after) - cpu_seconds(before),
        )


def check(result: Call, what: str, expected: Optional[str]) -> None:
    """Abort unless the call exited 0 and printed ``expected`` on stdout (stderr is ignored)."""
    if result.returncode == 0 and (expected is None or expected in result.stdout):
        return
    if result.returncode == -signal.SIGKILL:
        reason = f"did not finish within {CALL_TIMEOUT:.0f}s"
    else:
        reason = f"exited {result.returncode}"
    wanted = f"0 and {expected!r} on stdout" if expected else "0"
    output = (result.stdout + result.stderr).strip() or "(no output)"
    raise BenchError(f"{what} {reason}, expected {wanted}:\n{output}")


def version(argv: list[str], pattern: str) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(pattern, result.stdout + result.stderr)
    return match.group(1) if match else "unknown"


def distribution_of(interpreter: list[str], name: str) -> str:
    """The version of the distribution ``name`` (pyghmi, cryptography) that ``interpreter`` (an
    agent's #! line) finds."""
    probe = f"import importlib.metadata as m; print(m.version({name!r}))"
    if any(flag.startswith("-") and "S" in flag for flag in interpreter[1:]):
        # -S (the package's -IS): dist-packages is on sys.path only as the agent puts it there
        probe = "import sys; sys.path.append('/usr/lib/python3/dist-packages'); " + probe
    return version([*interpreter, "-c", probe], r"^(\S+)")


def host_info() -> dict[str, object]:
    ours = agent_interpreter(AGENT) if os.access(AGENT, os.R_OK) else None
    pyghmi = distribution_of(ours, "pyghmi") if ours else "unknown"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "fence_agents": version(["dpkg-query", "-W", "fence-agents"], r"fence-agents\s+(\S+)"),
        "ipmitool": version(["/usr/bin/ipmitool", "-V"], r"version (\S+)"),
        "pyghmi": pyghmi,
    }


def check_agents(paths: tuple[str, ...], hint: str) -> None:
    for path in paths:
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} not found ({hint})")


def node_pid(lab: Lab) -> Optional[int]:
    """The init pid of the measured node, from the lab's state: a reboot must change it."""
    return next(n.init_pid for n in lab.load().nodes if n.name == NODE)


class Bench:
    def __init__(self, lab: Lab, args: argparse.Namespace) -> None:
        self.lab = lab
        self.args = args
        self.wrap = lab.switch().runner.wrap
        nodes = lab.inventory()["nodes"]
        assert isinstance(nodes, list)
        entry = next(n for n in nodes if n["name"] == NODE)
        self.bmc = entry["bmc"]
        self.options = (
            f"ip={self.bmc['address']}\nusername={self.bmc['username']}\n"
            f"password={self.bmc['password']}\nlanplus=1\n"
        )
        self.series = {
            ("status", OURS): Series(OURS, "status"),
            ("status", THEIRS): Series(THEIRS, "status"),
            ("status", FLOOR): Series(FLOOR, "status"),
            ("reboot", OURS): Series(OURS, "reboot"),
            ("reboot", THEIRS): Series(THEIRS, "reboot"),
        }
        self.cycled = 0  # reboots after which the node had a new init and was on
        self.host: dict[str, object] = {}

    def agent_call(self, name: str, action: str) -> Call:
        if name == FLOOR:
            result = call(self.wrap([TRUE]), "")
            check(result, FLOOR, None)
            return result
        path = AGENT if name == OURS else INCUMBENT
        before = node_pid(self.lab) if action == "reboot" else None
        result = call(self.wrap([path]), f"{self.options}action={action}\n")
        check(result, f"{name} {action}", STATUS_OUTPUT if action == "status" else REBOOT_OUTPUT)
        if action == "reboot":
            after = node_pid(self.lab)
            power = self.lab.power_state(NODE)
            if after is None or after == before or power != "on":
                raise BenchError(
                    f"{name} reboot reported success but {NODE} was not power-cycled "
                    f"(init pid {before} -> {after}, power {power})"
                )
            self.cycled += 1
        return result

    def rounds(self, action: str, names: list[str], runs: int, gap: float) -> None:
        log(f"{action}: 1 warm-up and {runs} calls each of {', '.join(names)}")
        for name in names:
            self.agent_call(name, action)
            time.sleep(gap)
        self.cycled = 0  # count the measured reboots only
        for index in range(runs):
            order = names if index % 2 == 0 else names[::-1]
            for name in order:
                self.series[(action, name)].add(self.agent_call(name, action))
                time.sleep(gap)

    def imports(self) -> tuple[Imports, Imports]:
        # The agent's own interpreter (the package's: /usr/bin/python3 -I, Debian's pyghmi).
        argv = [*agent_interpreter(AGENT), "-X", "importtime", AGENT]
        metadata = call(argv, "action=metadata\n")
        check(metadata, f"{OURS} metadata under -X importtime", "<resource-agent")
        status = call(self.wrap(argv), f"{self.options}action=status\n")
        check(status, f"{OURS} status under -X importtime", STATUS_OUTPUT)
        return parse_imports(metadata.stderr), parse_imports(status.stderr)

    def run(self) -> tuple[Imports, Imports]:
        self.host = host_info()  # while the lab is up: its down may purge the package
        self.rounds("status", [OURS, THEIRS, FLOOR], self.args.runs, 0.0)
        self.rounds("reboot", [OURS, THEIRS], self.args.reboot_runs, self.args.gap)
        return self.imports()


def parse_imports(stderr: str) -> Imports:
    command = rust = False
    session_us: Optional[int] = None
    total_us = 0
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, indent, module = int(match.group(2)), match.group(3), match.group(4)
        if module == COMMAND_MODULE:
            command = True
        if module == SESSION_MODULE:
            session_us = cumulative
        if module == RUST_MODULE:
            rust = True
        if not indent:  # a top-level import: its cumulative time includes its children
            total_us += cumulative
    return Imports(
        command=command,
        rust=rust,
        session_ms=None if session_us is None else session_us / 1000,
        total_ms=total_us / 1000,
    )


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90, mean, min and max, in milliseconds."""
    return {
        "median": statistics.median(values) * 1000,
        "p90": p90(values) * 1000,
        "mean": statistics.fmean(values) * 1000,
        "min": min(values) * 1000,
        "max": max(values) * 1000,
    }


def ratio(ours: list[float], theirs: list[float]) -> float:
    return statistics.median(ours) / max(statistics.median(theirs), 1e-9)


def results(bench: Bench, imports: tuple[Imports, Imports]) -> dict[str, object]:
    series = bench.series
    ratios = {
        action: {
            "wall": ratio(series[(action, OURS)].wall, series[(action, THEIRS)].wall),
            "cpu": ratio(series[(action, OURS)].cpu, series[(action, THEIRS)].cpu),
        }
        for action in ("status", "reboot")
    }
    reboots = series[("reboot", OURS)].wall
    calls = list(series.values())
    polluted = sum(
        1
        for s in calls
        for cpu, delta in zip(s.cpu, s.children_delta)
        if delta - cpu > 0.001  # another child's CPU time reached the delta
    )
    return {
        "host": bench.host,
        "bmc": {"node": NODE, "address": bench.bmc["address"], "port": bench.bmc["port"]},
        "runs": bench.args.runs,
        "reboot_runs": bench.args.reboot_runs,
        "gap_s": bench.args.gap,
        "unit": "ms",
        "series": [
            {
                "action": s.action,
                "name": s.name,
                "wall": summary(s.wall),
                "cpu": summary(s.cpu),
                "slow_calls": slow_calls(s.wall),
                "wall_samples": [round(v * 1000, 3) for v in s.wall],
                "cpu_samples": [round(v * 1000, 3) for v in s.cpu],
                "rusage_children_delta_samples": [round(v * 1000, 3) for v in s.children_delta],
            }
            for s in calls
        ],
        "ratios_of_medians": ratios,
        "aims": {
            "status_half_of_fence_ipmilan": {
                "ratio": ratios["status"]["wall"],
                "limit": STATUS_AIM,
                "met": ratios["status"]["wall"] <= STATUS_AIM,
            },
            "verified_reboot_under_1s": {
                "median_s": statistics.median(reboots),
                "max_s": max(reboots),
                "under": sum(1 for v in reboots if v < REBOOT_AIM_S),
                "calls": len(reboots),
                "power_cycled": bench.cycled,
                "reboots": 2 * bench.args.reboot_runs,
                "met": statistics.median(reboots) < REBOOT_AIM_S
                and bench.cycled == 2 * bench.args.reboot_runs,
            },
        },
        "rusage_children_polluted_calls": polluted,
        "calls": sum(len(s.wall) for s in calls),
        "imports": {
            "metadata": imports_json(imports[0]),
            "status": imports_json(imports[1]),
        },
    }


def imports_json(imports: Imports) -> dict[str, object]:
    return {
        "pyghmi_ipmi_command": imports.command,
        "cryptography_rust_bindings": imports.rust,
        "session_cumulative_ms": imports.session_ms,
        "total_cumulative_ms": imports.total_ms,
    }


def slow_calls(values: list[float]) -> int:
    """Calls slower than three times the median: the tail the median hides."""
    limit = 3 * statistics.median(values)
    return sum(1 for v in values if v > limit)


def render(data: dict[str, object]) -> str:
    host = data["host"]
    bmc = data["bmc"]
    series = data["series"]
    ratios = data["ratios_of_medians"]
    aims = data["aims"]
    imports = data["imports"]
    assert isinstance(host, dict) and isinstance(bmc, dict) and isinstance(series, list)
    assert isinstance(ratios, dict) and isinstance(aims, dict) and isinstance(imports, dict)
    lines = [
        f"fence benchmark: {OURS} and {THEIRS} against the BMC of {bmc['node']} "
        f"({bmc['address']}:{bmc['port']})",
        f"in a 2-node lab; status {data['runs']} and reboot {data['reboot_runs']} calls per "
        "agent, interleaved, 1 warm-up each",
        f"{host['cpus']} CPUs, Python {host['python']}, fence-agents {host['fence_agents']}, "
        f"ipmitool {host['ipmitool']}, pyghmi {host['pyghmi']}",
        "every call: nsenter -t PID -n -- AGENT, options on stdin (nsenter /bin/true: its cost)",
        "",
        f"{'action':<7} {'agent':<19}  {'wall ms':>8} {'p90':>8} {'max':>8}  "
        f"{'cpu ms':>8} {'p90':>8}  {'slow':>5}",
        f"{'':<7} {'':<19}  {'median':>8} {'':>8} {'':>8}  {'median':>8}",
    ]
    for s in series:
        wall, cpu = s["wall"], s["cpu"]
        lines.append(
            f"{s['action']:<7} {s['name']:<19}  {wall['median']:8.1f} {wall['p90']:8.1f} "
            f"{wall['max']:8.1f}  {cpu['median']:8.1f} {cpu['p90']:8.1f}  "
            f"{str(s['slow_calls']) + '/' + str(len(s['wall_samples'])):>5}"
        )
    lines += [
        "(slow: calls whose wall time is over 3x the median)",
        "",
        f"ratios of medians ({OURS} / {THEIRS}):",
    ]
    for action, row in ratios.items():
        lines.append(f"  {action:<7} wall {row['wall']:5.2f}x  cpu {row['cpu']:5.2f}x")
    status, reboot = aims["status_half_of_fence_ipmilan"], aims["verified_reboot_under_1s"]
    lines += [
        "",
        "aims (reported, not asserted):",
        f"  status at most half of {THEIRS}'s wall time: "
        f"{'MET' if status['met'] else 'NOT MET'} ({status['ratio']:.2f}x, limit 0.50x)",
        f"  verified reboot under 1 s: {'MET on the median' if reboot['met'] else 'NOT MET'} "
        f"(median {reboot['median_s']:.3f} s, max {reboot['max_s']:.3f} s,",
        f"    {reboot['under']}/{reboot['calls']} under 1 s; {NODE} power-cycled by "
        f"{reboot['power_cycled']}/{reboot['reboots']} measured reboots of both agents)",
        "",
        f"imports of {OURS} (its #! line with -X importtime, one call each; cumulative ms):",
        f"  {'action':<9} {COMMAND_MODULE:<20} {SESSION_MODULE:<28} {'all imports':>11}  "
        "cryptography's Rust bindings",
    ]
    for action, row in imports.items():
        session = row["session_cumulative_ms"]
        lines.append(
            f"  {action:<9} {'IMPORTED' if row['pyghmi_ipmi_command'] else 'no':<20} "
            f"{'not imported' if session is None else f'{session:.1f}':<28} "
            f"{row['total_cumulative_ms']:11.1f}  "
            f"{'IMPORTED' if row['cryptography_rust_bindings'] else 'no'}"
        )
    lines += [
        "",
        "CPU: the child's own rusage (os.wait4), ipmitool included, the BMC simulator not;",
        "the RUSAGE_CHILDREN delta exceeded it by > 1 ms in "
        f"{data['rusage_children_polluted_calls']} of {data['calls']} calls.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20, help="status calls per agent (default 20)")
    parser.add_argument(
        "--reboot-runs", type=int, default=5, help="reboot calls per agent (default 5)"
    )
    parser.add_argument(
        "--gap", type=float, default=0.5, help="seconds between reboots (default 0.5)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    parser.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"default {DEFAULT_SUBNET}")
    parser.add_argument(
        "--up-timeout", type=float, default=300.0, help="seconds for the lab up (default 300)"
    )
    args = parser.parse_args(argv)
    if args.runs < 2 or args.reboot_runs < 1:
        parser.error("--runs must be at least 2 and --reboot-runs at least 1")
    if args.gap < 0:
        parser.error("--gap must not be negative")
    return args


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: the lab goes down


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "run as root: the lab needs namespaces and installs the stackha package with apt",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, terminate)
    try:
        check_agents((INCUMBENT,), "make deps installs fence-agents")
        with tempfile.TemporaryDirectory(prefix="stackha-bench-fence-") as tmp:
            lab = Lab(os.path.join(tmp, "lab"), progress=log)
            try:
                log(f"lab up: 2 nodes on {args.subnet}")
                lab.up(nodes=2, subnet=args.subnet, timeout=args.up_timeout)
                check_agents((AGENT,), "the lab installs the stackha package")
                bench = Bench(lab, args)
                imports = bench.run()
            finally:
                log("lab down")
                lab.down()
    except (BenchError, LabError) as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130
    data = results(bench, imports)
    print(render(data), end="")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1)
            handle.write("\n")
        print(f"\nnumbers written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
