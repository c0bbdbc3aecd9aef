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

Before measuring it makes sure the stackha Debian package is installed (bench/measure.py's
``stackha_package``: built from this checkout and purged afterwards if it was not), then starts a
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
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from typing import Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py.
from measure import (
    OCF_ROOT,
    BenchError,
    Command,
    ImportReport,
    base_env,
    interleaved,
    parse_args,
    read_importtime,
    render_table,
    run_once,
    samples_json,
    stackha_package,
    write_json,
)

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


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def import_report(env: dict[str, str]) -> ImportReport:
    """Run the monitor once under -X importtime: does it import lxml, and at what cost."""
    python = os.path.join(os.path.dirname(sys.executable), "python")
    result = run_once(
        [python, "-I", "-X", "importtime", AGENT, "monitor"],
        env,
        "monitor under -X importtime",
        timeout=ACTION_TIMEOUT,
    )
    return read_importtime(result.stderr, ("lxml",))


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
        *render_table(list(commands.values()), width),
    ]
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
        f"monitor imports lxml: {'yes' if 'lxml' in imports.heavy else 'no'}",
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
                **samples_json(command),
            }
            for name, command in commands.items()
        },
        "ratios_of_medians": table,
        "imports": {
            "lxml": "lxml" in imports.heavy,
            "stackha_cumulative_ms": imports.stackha_ms,
            "total_cumulative_ms": imports.total_ms,
        },
    }


def stop_quietly(argv: list[str], env: dict[str, str], what: str) -> bool:
    try:
        run_once(argv, env, what, timeout=ACTION_TIMEOUT)
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
        run_once([AGENT, "start"], depth0_env, "ocf:stackha:haproxy start", timeout=ACTION_TIMEOUT)
        run_once([DUMMY, "start"], dummy_env, "ocf:heartbeat:Dummy start", timeout=ACTION_TIMEOUT)
        dummy_started = True

        commands = [
            Command(DEPTH0, [AGENT, "monitor"], depth0_env),
            Command(DEPTH10, [AGENT, "monitor"], depth10_env),
            Command(DUMMY_NAME, [DUMMY, "monitor"], dummy_env),
            Command(FLOOR, [SYSTEM_PYTHON, "-c", "pass"], floor_env),
            Command(FLOOR_BARE, [SYSTEM_PYTHON, "-I", "-S", "-c", "pass"], floor_env),
        ]
        interleaved(commands, args.runs, args.warmup, timeout=ACTION_TIMEOUT)
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
        write_json(args.json, to_json(by_name, table, imports, args))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(__doc__.split("\n", 1)[0], argv)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root: the agents are installed and HAProxy started as root")
        for path in (HAPROXY, DUMMY, SYSTEM_PYTHON):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found (make deps installs haproxy, resource-agents)")
        # the agent as operators install it: the Debian package (installed for the run if absent)
        with stackha_package(lambda m: print(m, file=sys.stderr)):
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
