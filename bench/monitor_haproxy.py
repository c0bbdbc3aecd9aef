"""Benchmark: the cost of one `monitor` call of ocf:stackha:haproxy next to the incumbents.

Pacemaker runs an agent's monitor every few seconds on every node, for the life of the cluster,
so its per-call cost matters. This script measures, in one run and under the same conditions:

- ``stackha haproxy depth 0``: /usr/lib/ocf/resource.d/stackha/haproxy monitor, OCF_CHECK_LEVEL=0
  (master and workers alive);
- ``stackha haproxy depth 10``: the same with OCF_CHECK_LEVEL=10 (also 'show info' on the stats
  socket);
- ``Dummy (shell)``: /usr/lib/ocf/resource.d/heartbeat/Dummy monitor, the incumbent shell agent
  (resource-agents has no HAProxy agent, and Dummy is the cheapest thing a shell agent can do);
- ``python3 -c pass`` and ``python3 -I -S -c pass``: the floor of any Python program.

Before measuring it runs ``stackha install`` (the script next to sys.executable), then starts a
real HAProxy through the agent's own ``start`` action, on a free loopback port with a
configuration in a temporary directory, and starts Dummy. Both are stopped with their ``stop``
action at the end, whatever happens. Every command must exit 0, or the benchmark aborts.

Each command runs ``--runs`` times (default 200), interleaved round-robin so that machine noise
hits every command alike, after ``--warmup`` rounds that are not counted. Per call it records
the wall time (time.perf_counter around the child, spawn to reap) and the CPU time (user + sys)
of the child and the descendants it waited for, from os.wait4. HAProxy's own work answering the
stats socket is not in the child's CPU time. It prints the median and p90 of each command, the
ratios of the stackha monitor to Dummy and to the Python floor, and whether the monitor path
imports lxml (from one run under ``python -X importtime``).

Run as root, on a checkout after ``make venv``::

    make bench
    .venv/bin/python bench/monitor_haproxy.py --runs 100 --json bench.json

Standard library only; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

OCF_ROOT = "/usr/lib/ocf"
AGENT = f"{OCF_ROOT}/resource.d/stackha/haproxy"
DUMMY = f"{OCF_ROOT}/resource.d/heartbeat/Dummy"
SYSTEM_PYTHON = "/usr/bin/python3"
HAPROXY = "/usr/sbin/haproxy"
ACTION_TIMEOUT = 60.0  # seconds for start, stop and the one-off runs

DEPTH0 = "stackha haproxy depth 0"
DEPTH10 = "stackha haproxy depth 10"
DUMMY_NAME = "Dummy (shell)"
FLOOR = "python3 -c pass"
FLOOR_BARE = "python3 -I -S -c pass"

CONFIG_TEMPLATE = """\
global
    stats socket {run_dir}/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend web
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string ok
"""

# "import time:       946 |       2880 | stackha.services.haproxy"; nesting is two spaces a level.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


class BenchError(Exception):
    """A precondition or a command failed; the message says which and why."""


@dataclass
class Command:
    name: str
    argv: list[str]
    env: dict[str, str]
    wall: list[float] = field(default_factory=list)  # seconds
    cpu: list[float] = field(default_factory=list)  # seconds, user + sys


@dataclass
class ImportReport:
    lxml: bool
    stackha_ms: float  # cumulative import time of the top-level stackha imports
    total_ms: float  # cumulative import time of every top-level import


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--runs", type=int, default=200, help="measured calls per command (default 200)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="uncounted rounds before measuring (default 2)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def base_env() -> dict[str, str]:
    """A clean environment, close to what pacemaker-execd gives an agent."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "OCF_ROOT": OCF_ROOT,
    }


def run_once(argv: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise BenchError with its output unless it exits 0."""
    try:
        result = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=ACTION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"{what} failed: {err}") from err
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip() or "(no output)"
        raise BenchError(f"{what} exited {result.returncode}, expected 0:\n{output}")
    return result


def install_agents() -> None:
    stackha = os.path.join(os.path.dirname(sys.executable), "stackha")
    if not os.access(stackha, os.X_OK):
        raise BenchError(f"{stackha} not found: run 'make venv' and use the venv's python")
    run_once([stackha, "install"], base_env(), "stackha install")
    if not os.access(AGENT, os.X_OK):
        raise BenchError(f"stackha install did not install {AGENT}")


def measure_once(command: Command) -> None:
    """One call: wall time around spawn-to-reap, CPU time from the child's rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        command.argv,
        env=command.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        # Run it again with its output captured, for the message.
        run_once(command.argv, command.env, command.name)
        raise BenchError(f"{command.name} exited {proc.returncode}, expected 0")
    command.wall.append(wall)
    command.cpu.append(usage.ru_utime + usage.ru_stime)


def measure(commands: list[Command], runs: int, warmup: int) -> None:
    for _ in range(warmup):
        for command in commands:
            measure_once(command)
    for command in commands:
        command.wall.clear()
        command.cpu.clear()
    for _ in range(runs):
        for command in commands:
            measure_once(command)


def import_report(env: dict[str, str]) -> ImportReport:
    """Run the monitor once under -X importtime: does it import lxml, and at what cost."""
    python = os.path.join(os.path.dirname(sys.executable), "python")
    result = run_once(
        [python, "-I", "-X", "importtime", AGENT, "monitor"], env, "monitor under -X importtime"
    )
    lxml = False
    stackha_us = total_us = 0
    for line in result.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, indent, module = int(match.group(2)), match.group(3), match.group(4)
        if module == "lxml" or module.startswith("lxml."):
            lxml = True
        if len(indent) == 0:  # a top-level import: its cumulative time includes its children
            total_us += cumulative
            if module == "stackha" or module.startswith("stackha."):
                stackha_us += cumulative
    return ImportReport(lxml=lxml, stackha_ms=stackha_us / 1000, total_ms=total_us / 1000)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90 and mean, in milliseconds."""
    return {
        "median": statistics.median(values) * 1000,
        "p90": p90(values) * 1000,
        "mean": statistics.fmean(values) * 1000,
    }


def ratios(commands: dict[str, Command]) -> dict[str, dict[str, dict[str, float]]]:
    """Median of each stackha depth divided by the median of each baseline, wall and CPU."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for ours in (DEPTH0, DEPTH10):
        table[ours] = {}
        for base in (DUMMY_NAME, FLOOR, FLOOR_BARE):
            table[ours][base] = {
                "wall": statistics.median(commands[ours].wall)
                / statistics.median(commands[base].wall),
                "cpu": statistics.median(commands[ours].cpu)
                / max(statistics.median(commands[base].cpu), 1e-9),
            }
    return table


def haproxy_version() -> str:
    try:
        result = subprocess.run(
            [HAPROXY, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = result.stdout.splitlines()[0] if result.stdout else ""
    match = re.search(r"version (\S+)", first)
    return match.group(1) if match else "unknown"


def render(
    commands: dict[str, Command],
    table: dict[str, dict[str, dict[str, float]]],
    imports: ImportReport,
    args: argparse.Namespace,
) -> str:
    width = max(len(name) for name in commands)
    lines = [
        f"monitor benchmark: {args.runs} calls per command, interleaved, "
        f"{args.warmup} warm-up rounds; {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f", HAProxy {haproxy_version()}",
        "",
        f"{'command':<{width}}  {'wall ms':>8} {'p90':>8}  {'cpu ms':>8} {'p90':>8}",
        f"{'':<{width}}  {'median':>8} {'':>8}  {'median':>8} {'':>8}",
    ]
    for name, command in commands.items():
        wall, cpu = summary(command.wall), summary(command.cpu)
        lines.append(
            f"{name:<{width}}  {wall['median']:8.2f} {wall['p90']:8.2f}  "
            f"{cpu['median']:8.2f} {cpu['p90']:8.2f}"
        )
    bases = (DUMMY_NAME, FLOOR, FLOOR_BARE)
    base_width = max(len(base) for base in bases)
    lines += ["", "ratios of medians (stackha / baseline):", ""]
    lines.append(
        f"{'':<{width}}  {'baseline':<{base_width}}  {'wall':>6}  {'cpu':>6}",
    )
    for ours, row in table.items():
        for base in bases:
            label = ours if base == bases[0] else ""
            lines.append(
                f"{label:<{width}}  {base:<{base_width}}  "
                f"{row[base]['wall']:5.2f}x  {row[base]['cpu']:5.2f}x"
            )
    lines += [
        "",
        f"monitor imports lxml: {'yes' if imports.lxml else 'no'}",
        f"import time (one run, -X importtime): stackha modules {imports.stackha_ms:.1f} ms "
        f"cumulative, all top-level imports {imports.total_ms:.1f} ms",
    ]
    return "\n".join(lines)


def to_json(
    commands: dict[str, Command],
    table: dict[str, dict[str, dict[str, float]]],
    imports: ImportReport,
    args: argparse.Namespace,
) -> dict[str, object]:
    return {
        "runs": args.runs,
        "warmup": args.warmup,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "haproxy": haproxy_version(),
        "unit": "ms",
        "commands": {
            name: {
                "argv": command.argv,
                "check_level": command.env.get("OCF_CHECK_LEVEL"),
                "wall": summary(command.wall),
                "cpu": summary(command.cpu),
                "wall_samples": [round(v * 1000, 4) for v in command.wall],
                "cpu_samples": [round(v * 1000, 4) for v in command.cpu],
            }
            for name, command in commands.items()
        },
        "ratios_of_medians": table,
        "imports": {
            "lxml": imports.lxml,
            "stackha_cumulative_ms": imports.stackha_ms,
            "total_cumulative_ms": imports.total_ms,
        },
    }


def stop_quietly(argv: list[str], env: dict[str, str], what: str) -> bool:
    try:
        run_once(argv, env, what)
    except BenchError as err:
        print(f"warning: {err}", file=sys.stderr)
        return False
    return True


def kill_leftover_haproxy(pidfile: str) -> None:
    """Last resort after a failed stop: SIGTERM the HAProxy master this run started, by pid."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().split()[0])
        with open(f"/proc/{pid}/comm", encoding="ascii") as handle:
            if handle.read().strip() != "haproxy":
                return
        os.kill(pid, signal.SIGTERM)
        print(f"warning: sent SIGTERM to HAProxy master {pid}", file=sys.stderr)
    except (OSError, ValueError, IndexError):
        pass


def run(args: argparse.Namespace, tmp: str) -> int:
    run_dir = os.path.join(tmp, "run")
    os.makedirs(run_dir)
    config = os.path.join(tmp, "haproxy.cfg")
    pidfile = os.path.join(run_dir, "haproxy.pid")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(CONFIG_TEMPLATE.format(run_dir=run_dir, port=free_loopback_port()))

    agent_env = dict(
        base_env(),
        OCF_RESOURCE_INSTANCE="bench-haproxy",
        OCF_RESKEY_config=config,
        OCF_RESKEY_pidfile=pidfile,
        OCF_RESKEY_CRM_meta_interval="10000",
        OCF_RESKEY_CRM_meta_timeout="20000",
    )
    depth0_env = dict(agent_env, OCF_CHECK_LEVEL="0")
    depth10_env = dict(agent_env, OCF_CHECK_LEVEL="10")
    dummy_env = dict(
        base_env(),
        OCF_RESOURCE_INSTANCE="bench-dummy",
        OCF_RESKEY_state=os.path.join(tmp, "dummy.state"),
    )
    floor_env = base_env()

    dummy_started = False
    try:
        run_once([AGENT, "start"], depth0_env, "ocf:stackha:haproxy start")
        run_once([DUMMY, "start"], dummy_env, "ocf:heartbeat:Dummy start")
        dummy_started = True

        commands = [
            Command(DEPTH0, [AGENT, "monitor"], depth0_env),
            Command(DEPTH10, [AGENT, "monitor"], depth10_env),
            Command(DUMMY_NAME, [DUMMY, "monitor"], dummy_env),
            Command(FLOOR, [SYSTEM_PYTHON, "-c", "pass"], floor_env),
            Command(FLOOR_BARE, [SYSTEM_PYTHON, "-I", "-S", "-c", "pass"], floor_env),
        ]
        measure(commands, args.runs, args.warmup)
        imports = import_report(depth0_env)
    finally:
        if dummy_started:
            stop_quietly([DUMMY, "stop"], dummy_env, "ocf:heartbeat:Dummy stop")
        # Stop even if start failed half-way: stop is idempotent and may find a master.
        if not stop_quietly([AGENT, "stop"], depth0_env, "ocf:stackha:haproxy stop"):
            kill_leftover_haproxy(pidfile)

    by_name = {command.name: command for command in commands}
    table = ratios(by_name)
    print(render(by_name, table, imports, args))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(to_json(by_name, table, imports, args), handle, indent=2)
            handle.write("\n")
        print(f"\nnumbers written to {args.json}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root: the agents are installed and HAProxy started as root")
        for path in (HAPROXY, DUMMY, SYSTEM_PYTHON):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found (make deps installs haproxy, resource-agents)")
        install_agents()
        with tempfile.TemporaryDirectory(prefix="stackha-bench-") as tmp:
            return run(args, tmp)
    except BenchError as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
