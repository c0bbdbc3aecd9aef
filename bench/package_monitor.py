"""Benchmark: one `monitor` of ocf:stackha:haproxy from the Debian package and from the virtualenv.

The Debian package and the development install (``stackha install``) run the same agent with
different interpreters and libraries: the package's agent starts ``/usr/bin/python3 -IS`` with
stackha and Debian's lxml in /usr/lib/python3/dist-packages; the development install's starts
the virtualenv's python with ``-I`` (stackha from the checkout through the editable install,
PyPI's lxml). The package must not be slower. This script measures, in one run and under the
same conditions:

- ``package monitor depth 0`` and ``depth 10``: /usr/lib/ocf/resource.d/stackha/haproxy monitor,
  OCF_CHECK_LEVEL=0 (master and workers alive) and 10 (also 'show info' on the stats socket),
  started through its ``#!/usr/bin/python3 -IS`` line (debian/install-python-program: no
  site.py; the agent appends /usr/lib/python3/dist-packages to sys.path itself);
- ``venv monitor depth 0`` and ``depth 10``: the checkout's agents/haproxy run with exactly the
  interpreter line ``stackha install`` writes (the virtualenv's python, ``-I``);
- the floors: ``-I -S -c pass`` of each interpreter (no site at all), and ``-I -c pass`` (what
  each ``#!`` line starts before the agent's first import: site and the .pth files of its
  site-packages);
- ``package agent with site depth 0``: the package's agent and library under
  ``/usr/bin/python3 -I`` (site.py on), as the package first shipped them: what site.py and
  the .pth files of dist-packages cost each start (on a Debian OpenStack controller,
  python3-pastescript, -repoze.*, -zope.* and -google-auth each bring a namespace-package .pth
  that imports importlib.util) — the reason the package's agents start with -S.

The package is used as it is when it is installed. Otherwise it is built from this checkout
(scripts/build-deb, into a temporary directory), installed with apt and purged at the end; a
development install found in /usr/lib/ocf is removed by the package's installation (the output
says so) and written again with ``stackha install`` after the purge. One real HAProxy is started
through the package agent's ``start`` action, on a free loopback port with a configuration in a
temporary directory (as monitor_haproxy.py does), and stopped with its ``stop`` action whatever
happens (also on Ctrl-C and SIGTERM). Both agents monitor that one instance. Every command must
exit 0, or the benchmark aborts.

Each command runs ``--runs`` times (default 200), interleaved round-robin after ``--warmup``
uncounted rounds (bench/measure.py). Per call: wall time (spawn to reap) and the child's CPU time
(user + sys, os.wait4). It prints medians and p90s, the ratios of medians package/venv and
monitor/floor (with the differences in ms), which stackha and lxml each interpreter finds, and
whether each monitor imports lxml (one run of each under ``python -X importtime``).

Run as root, on a checkout after ``make venv``::

    make bench
    .venv/bin/python bench/package_monitor.py --runs 500 --json package-monitor.json

Standard library and stackha; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py, and the HAProxy
# instance is monitor_haproxy.py's.
from measure import (
    OCF_ROOT,
    BenchError,
    Command,
    ImportReport,
    agent_interpreter,
    base_env,
    interleaved,
    package_differences,
    parse_args,
    read_importtime,
    render_table,
    run_once,
    samples_json,
    stackha_package,
    write_json,
)
from monitor_haproxy import (
    CONFIG_TEMPLATE,
    HAPROXY,
    free_loopback_port,
    haproxy_version,
    kill_leftover_haproxy,
    stop_quietly,
)
from stackha.install import interpreter_line

CHECKOUT = Path(__file__).resolve().parents[1]
PACKAGE_AGENT = f"{OCF_ROOT}/resource.d/stackha/haproxy"
CHECKOUT_AGENT = str(CHECKOUT / "agents" / "haproxy")
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGE_INTERPRETER = [SYSTEM_PYTHON, "-IS"]  # debian/install-python-program writes it
# What the package's programs do first, since -S leaves the distribution's modules off sys.path.
DIST_PACKAGES = "import sys; sys.path.append('/usr/lib/python3/dist-packages'); "
PACKAGE_LIBRARY = "/usr/lib/python3/dist-packages/stackha/"
ACTION_TIMEOUT = 60.0

PKG0 = "package monitor depth 0"
PKG10 = "package monitor depth 10"
VENV0 = "venv monitor depth 0"
VENV10 = "venv monitor depth 10"
PKG_BARE = "python3 -I -S -c pass"
VENV_BARE = "venv python -I -S -c pass"
PKG_SITE = "python3 -I -c pass"
VENV_SITE = "venv python -I -c pass"
PKG_SITE0 = "package agent with site depth 0"

# Which stackha and lxml an interpreter finds (its flags as the agent's #! line has them).
WHERE = (
    "import stackha, lxml.etree as etree; "
    "print(stackha.__file__); print('.'.join(map(str, etree.LXML_VERSION[:3])))"
)


@dataclass
class Side:
    """One way of running the agent: its interpreter line and the agent file."""

    name: str  # "package" or "venv"
    interpreter: list[str]
    agent: str
    by_its_own_line: bool  # exec the agent (the kernel reads its #! line), as execd does
    stackha: str = ""  # where that interpreter finds stackha
    lxml: str = ""  # the lxml version it finds

    def monitor(self) -> list[str]:
        if self.by_its_own_line:
            return [self.agent, "monitor"]
        return [*self.interpreter, self.agent, "monitor"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def venv_interpreter() -> list[str]:
    """The interpreter line ``stackha install`` writes when run from this virtualenv."""
    if sys.prefix == sys.base_prefix:
        raise BenchError("run with the virtualenv's python (.venv/bin/python, after make venv)")
    return interpreter_line()[2:].split()


def locate(side: Side) -> None:
    """Fill in which stackha and lxml the side's interpreter finds; BenchError if the package
    side would not run the package's library or the venv side not the checkout's."""
    result = run_once(
        [*side.interpreter, "-c", (DIST_PACKAGES if "-IS" in side.interpreter else "") + WHERE],
        base_env(),
        f"{side.name}: import stackha, lxml",
        timeout=30,
    )
    side.stackha, side.lxml = result.stdout.split()
    expected = PACKAGE_LIBRARY if side.name == "package" else str(CHECKOUT / "lib" / "stackha")
    if not side.stackha.startswith(expected):
        raise BenchError(f"{side.name}: {side.interpreter} finds stackha in {side.stackha}")


def import_report(side: Side, env: dict[str, str]) -> ImportReport:
    """One monitor under ``-X importtime``: does it import lxml, and what its imports cost."""
    result = run_once(
        [*side.interpreter, "-X", "importtime", side.agent, "monitor"],
        env,
        f"{side.name} monitor under -X importtime",
        timeout=ACTION_TIMEOUT,
    )
    return read_importtime(result.stderr, ("lxml",))


def median_ms(command: Command, what: str) -> float:
    values = command.wall if what == "wall" else command.cpu
    return statistics.median(values) * 1000


# (ours, baseline) pairs whose ratio of medians is reported.
PAIRS = (
    (PKG0, VENV0),
    (PKG10, VENV10),
    (PKG_SITE0, VENV0),
    (PKG0, PKG_SITE0),
    (PKG_BARE, VENV_BARE),
    (PKG_SITE, VENV_SITE),
    (PKG0, PKG_BARE),
    (PKG10, PKG_BARE),
    (VENV0, VENV_BARE),
    (VENV10, VENV_BARE),
)


def ratios(commands: dict[str, Command]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for ours, base in PAIRS:
        row: dict[str, object] = {"command": ours, "baseline": base}
        for what in ("wall", "cpu"):
            a, b = median_ms(commands[ours], what), median_ms(commands[base], what)
            row[what] = a / max(b, 1e-9)
            row[f"{what}_diff_ms"] = a - b
        rows.append(row)
    return rows


def versions() -> dict[str, object]:
    def query(package: str) -> str:
        try:
            result = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", package],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        return result.stdout.strip() or "not installed"

    return {
        "stackha_package": query("stackha"),
        "python3_lxml": query("python3-lxml"),
        "python3": platform.python_version(),
        "haproxy": haproxy_version(),
        # Empty when the package measured holds this checkout's library and agent.
        "differs_from_checkout": package_differences(CHECKOUT, {PACKAGE_AGENT: CHECKOUT_AGENT}),
    }


def render(
    commands: dict[str, Command],
    rows: list[dict[str, object]],
    sides: tuple[Side, Side],
    imports: dict[str, ImportReport],
    info: dict[str, object],
    args: argparse.Namespace,
) -> str:
    width = max(len(name) for name in commands)
    lines = [
        f"package monitor benchmark: {args.runs} calls per command, interleaved, {args.warmup} "
        f"warm-up rounds; {os.cpu_count()} CPUs, Python {info['python3']}, "
        f"HAProxy {info['haproxy']}, stackha package {info['stackha_package']}",
    ]
    for side in sides:
        lines.append(
            f"  {side.name:<8} {' '.join(side.interpreter)}: stackha {side.stackha}, "
            f"lxml {side.lxml}"
        )
    differs = info["differs_from_checkout"]
    assert isinstance(differs, list)
    lines.append(
        "  the package's library and agent against this checkout's: "
        + (f"DIFFER in {', '.join(differs)}" if differs else "the same")
    )
    lines += ["", *render_table(list(commands.values()), width), ""]
    base_width = max(len(str(row["baseline"])) for row in rows)
    lines.append("ratios of medians (and differences):")
    lines.append(
        f"  {'':<{width}}  {'baseline':<{base_width}}  {'wall':>6} {'ms':>6}  {'cpu':>6} {'ms':>6}"
    )
    for row in rows:
        lines.append(
            f"  {row['command']:<{width}}  {row['baseline']:<{base_width}}  "
            f"{row['wall']:5.2f}x {row['wall_diff_ms']:+6.1f}  "
            f"{row['cpu']:5.2f}x {row['cpu_diff_ms']:+6.1f}"
        )
    lines += [
        "",
        "imports of one monitor (python -X importtime; cumulative ms of the top-level imports):",
        f"  {'':<{width}}  {'lxml':>4}  {'site':>6}  {'stackha':>7}  {'all':>6}",
    ]
    for name, report in imports.items():
        lines.append(
            f"  {name:<{width}}  {'yes' if 'lxml' in report.heavy else 'no':>4}  "
            f"{report.site_ms:6.1f}  {report.stackha_ms:7.1f}  {report.total_ms:6.1f}"
        )
    return "\n".join(lines)


def to_json(
    commands: dict[str, Command],
    rows: list[dict[str, object]],
    sides: tuple[Side, Side],
    imports: dict[str, ImportReport],
    info: dict[str, object],
    args: argparse.Namespace,
) -> dict[str, object]:
    return {
        "runs": args.runs,
        "warmup": args.warmup,
        "cpus": os.cpu_count(),
        "versions": info,
        "sides": {
            side.name: {
                "interpreter": side.interpreter,
                "agent": side.agent,
                "stackha": side.stackha,
                "lxml": side.lxml,
            }
            for side in sides
        },
        "unit": "ms",
        "commands": {
            name: {
                "argv": command.argv,
                "check_level": command.env.get("OCF_CHECK_LEVEL"),
                **samples_json(command),
            }
            for name, command in commands.items()
        },
        "ratios_of_medians": rows,
        "imports": {
            name: {
                "lxml": "lxml" in report.heavy,
                "site_cumulative_ms": report.site_ms,
                "stackha_cumulative_ms": report.stackha_ms,
                "total_cumulative_ms": report.total_ms,
            }
            for name, report in imports.items()
        },
    }


def measure(args: argparse.Namespace, tmp: str) -> int:
    package = Side("package", agent_interpreter(PACKAGE_AGENT), PACKAGE_AGENT, True)
    if package.interpreter != PACKAGE_INTERPRETER:
        raise BenchError(
            f"{PACKAGE_AGENT} starts {' '.join(package.interpreter)}, not "
            f"{' '.join(PACKAGE_INTERPRETER)}: is it the package's?"
        )
    venv = Side("venv", venv_interpreter(), CHECKOUT_AGENT, False)
    for side in (package, venv):
        locate(side)

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
    depth0 = dict(agent_env, OCF_CHECK_LEVEL="0")
    depth10 = dict(agent_env, OCF_CHECK_LEVEL="10")
    floor = base_env()
    try:
        log("starting HAProxy with the package agent's start action")
        run_once([PACKAGE_AGENT, "start"], depth0, "ocf:stackha:haproxy start", timeout=60)
        commands = [
            Command(PKG0, package.monitor(), depth0),
            Command(PKG10, package.monitor(), depth10),
            Command(VENV0, venv.monitor(), depth0),
            Command(VENV10, venv.monitor(), depth10),
            Command(PKG_BARE, [SYSTEM_PYTHON, "-I", "-S", "-c", "pass"], floor),
            Command(VENV_BARE, [*venv.interpreter, "-S", "-c", "pass"], floor),
            Command(PKG_SITE, [SYSTEM_PYTHON, "-I", "-c", "pass"], floor),
            Command(VENV_SITE, [*venv.interpreter, "-c", "pass"], floor),
            Command(PKG_SITE0, [SYSTEM_PYTHON, "-I", PACKAGE_AGENT, "monitor"], depth0),
        ]
        log(f"measuring: {args.runs} rounds of {len(commands)} commands")
        interleaved(commands, args.runs, args.warmup, timeout=ACTION_TIMEOUT)
        imports = {
            PKG0: import_report(package, depth0),
            PKG10: import_report(package, depth10),
            VENV0: import_report(venv, depth0),
            VENV10: import_report(venv, depth10),
        }
    finally:
        # Stop even if start failed half-way: stop is idempotent and may find a master.
        log("stopping HAProxy with the package agent's stop action")
        if not stop_quietly([PACKAGE_AGENT, "stop"], depth0, "ocf:stackha:haproxy stop"):
            kill_leftover_haproxy(pidfile)

    by_name = {command.name: command for command in commands}
    rows = ratios(by_name)
    info = versions()
    print(render(by_name, rows, (package, venv), imports, info, args))
    if args.json:
        write_json(args.json, to_json(by_name, rows, (package, venv), imports, info, args))
    return 0


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: HAProxy stops


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(__doc__.split("\n", 1)[0], argv)
    signal.signal(signal.SIGTERM, terminate)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root: the package is installed with apt, HAProxy as root")
        for path in (HAPROXY, SYSTEM_PYTHON):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found (make deps installs haproxy)")
        with stackha_package(log), tempfile.TemporaryDirectory(prefix="stackha-bench-") as tmp:
            return measure(args, tmp)
    except BenchError as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
