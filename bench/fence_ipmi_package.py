"""Benchmark: `status` of the packaged fence_stackha_ipmi next to fence_ipmilan, one loopback BMC.

The issue's aim — our ``status`` at most half of fence_ipmilan's wall time — must hold for the
Debian package: /usr/sbin/fence_stackha_ipmi with ``#!/usr/bin/python3 -IS``, Debian's
python3-pyghmi (1.5.34 on Debian 12) and python3-cryptography, not the virtualenv's PyPI
releases. This script measures, in one run and against one BMC:

- ``package``: /usr/sbin/fence_stackha_ipmi, exec'd (the kernel reads its ``#!`` line);
- ``fence_ipmilan``: /usr/sbin/fence_ipmilan (Debian fence-agents, which runs ipmitool);
- ``venv``, for reference: the checkout's fence/fence_stackha_ipmi under the interpreter line
  ``stackha install`` writes (the virtualenv's python, ``-I``; PyPI's pyghmi);
- ``package -I``, for reference: the package's agent under ``/usr/bin/python3 -I``, site.py on,
  as the package first shipped it: what site.py and the .pth files of dist-packages cost a
  ``status`` (the reason the package's programs start with -S; debian/install-python-program).

The BMC is OpenIPMI's ``ipmi_sim`` (an IPMI 2.0 implementation in C, independent of pyghmi) on
127.0.0.1 with one admin user (a random password, in its configuration file in a private
temporary directory) and its power in a file: no namespace lab is needed. It is configured as
the integration tests configure it (tests/integration/test_fence_ipmi_sim.py) but for one
thing: ipmi_sim runs its ``chassis_control`` program for every power query, and here that
program is a /bin/sh script (``cat`` of the state file; a few ms), not a Python script (a
python3 start: about 16 ms more for every ``status`` of either agent, which would measure the
simulator rather than the agents). Every agent gets its options on stdin, as pacemaker-fenced
sends them (``ip=``, ``ipport=``, ``username=``, ``password=``, ``lanplus=1``,
``action=status``): no password on any command line of ours. fence_ipmilan also gets
``cipher=3``, as a device configured for this BMC would have: without ``-C``, ipmitool 1.8.19
first asks for the channel's cipher suites, which ipmi_sim does not answer, and waits 14 s.

The package is used as it is when it is installed; otherwise it is built from this checkout
(scripts/build-deb), installed with apt for the run and purged at the end (bench/measure.py's
``stackha_package``). Each agent gets ``--warmup`` uncounted calls, then ``--runs`` ``status``
calls, interleaved, the order rotating each round. Every call must exit 0 and print "Status:
ON" (stderr is ignored: fence_ipmilan prints a DeprecationWarning), or the run aborts with the
agent's output. Per call: the wall time (spawn to reap) and the CPU time of the child and what
it waited for (ipmitool), from os.wait4; ipmi_sim's own work is in neither.

It prints medians, p90s, maxima and the calls slower than 3x their median, the ratios of
medians, the aim (reported, not asserted), and, from one ``status`` of each of our agents under
its ``#!`` line with ``-X importtime``: whether ``pyghmi.ipmi.command`` is imported, the
cumulative import time of pyghmi's session module, whether the ``cryptography`` package's Rust
bindings were loaded (they must not be where the libcrypto shortcut of
``stackha.fencing.openssl_aes`` fits the pyghmi installed), and the agent's log lines (a
WARNING says when the shortcut did not fit and pyghmi's AES came from cryptography).

Run as root after ``make venv`` (about a minute)::

    make bench
    .venv/bin/python bench/fence_ipmi_package.py --runs 200 --json fence-package.json

Standard library and stackha; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py, and the measuring
# and reading of a fence call are fence_ipmi.py's.
from fence_ipmi import (
    AGENT,
    COMMAND_MODULE,
    INCUMBENT,
    SESSION_MODULE,
    STATUS_AIM,
    STATUS_OUTPUT,
    Imports,
    Series,
    call,
    check,
    distribution_of,
    log,
    parse_imports,
    ratio,
    slow_calls,
    summary,
    version,
)
from measure import (
    BenchError,
    agent_interpreter,
    package_differences,
    stackha_package,
    write_json,
)
from stackha.install import interpreter_line

CHECKOUT = Path(__file__).resolve().parents[1]
CHECKOUT_AGENT = str(CHECKOUT / "fence" / "fence_stackha_ipmi")
PACKAGE_INTERPRETER = ["/usr/bin/python3", "-IS"]  # debian/install-python-program writes it
IPMI_SIM = "/usr/bin/ipmi_sim"
PACKAGE = "package"
VENV = "venv"
WITH_SITE = "package -I"
THEIRS = "fence_ipmilan"
# ipmitool 1.8.19 without -C first sends Get Channel Cipher Suites; ipmi_sim does not answer it.
INCUMBENT_OPTIONS = "cipher=3\n"
SIM_START_S = 5.0

# ipmi_sim's chassis_control program: DEV get power | DEV set power 0|1 | DEV check.
CHASSIS = """#!/bin/sh
case "$2 $3" in
"get power") echo "power:$(cat "$0.state")" ;;
"set power") echo "$4" >"$0.state" ;;
*) exit 1 ;;
esac
"""
LAN_CONF = """name "stackha-bench"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{chassis} 0x20"
  user 2 true  "admin" "{password}" admin 10 none md2 md5 straight
"""
SIM_EMU = (
    "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n"
)


@dataclass
class Agent:
    name: str
    argv: list[str]
    extra_options: str = ""
    interpreter: Optional[list[str]] = None  # ours: the #! line, for -X importtime


@dataclass
class Trace:
    """One status of our agent under -X importtime."""

    imports: Imports
    log_lines: list[str]  # what the agent wrote to stderr besides the import times


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100, help="status calls per agent (100)")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted calls per agent (2)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = parser.parse_args(argv)
    if args.runs < 2 or args.warmup < 0:
        parser.error("--runs must be at least 2 and --warmup not negative")
    return args


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_ipmi_sim(directory: Path) -> Iterator[dict[str, object]]:
    """ipmi_sim on 127.0.0.1, power on; yields its port and the admin's password. Killed (by
    its pid) at the end whatever happens."""
    port, password = free_udp_port(), secrets.token_hex(8)
    chassis = directory / "chassis"
    chassis.write_text(CHASSIS)
    chassis.chmod(0o755)
    (directory / "chassis.state").write_text("1\n")
    config = directory / "lan.conf"
    config.touch(mode=0o600)  # the password is in it
    config.write_text(LAN_CONF.format(port=port, chassis=chassis, password=password))
    (directory / "sim.emu").write_text(SIM_EMU)
    (directory / "state").mkdir()
    argv = [IPMI_SIM, "-c", str(config), "-f", str(directory / "sim.emu")]
    argv += ["-s", str(directory / "state"), "-n"]
    with open(directory / "ipmi_sim.log", "wb") as output:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
    try:
        sim: dict[str, object] = {"port": port, "password": password}
        wait_until_answering(sim, process, directory)
        yield sim
    finally:
        process.kill()
        process.wait()


def wait_until_answering(
    sim: dict[str, object], process: subprocess.Popen[bytes], directory: Path
) -> None:
    """Until one status of ipmitool (password in its environment, not on its command line)
    says the power is on; BenchError if ipmi_sim exits or does not answer in time."""
    argv = ["/usr/bin/ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1"]
    argv += ["-p", str(sim["port"]), "-U", "admin", "-E", "-N", "1", "-R", "1"]
    argv += ["chassis", "power", "status"]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "IPMI_PASSWORD": str(sim["password"])}
    deadline = time.monotonic() + SIM_START_S
    while True:
        if process.poll() is not None:
            log_text = (directory / "ipmi_sim.log").read_text(errors="replace").strip()
            raise BenchError(f"ipmi_sim exited {process.returncode}: {log_text or '(no output)'}")
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
        if "Chassis Power is on" in result.stdout:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"ipmi_sim does not answer ipmitool: {result.stderr.strip()}")
        time.sleep(0.1)


def venv_interpreter() -> list[str]:
    """The interpreter line ``stackha install`` writes when run from this virtualenv."""
    if sys.prefix == sys.base_prefix:
        raise BenchError("run with the virtualenv's python (.venv/bin/python, after make venv)")
    return interpreter_line()[2:].split()


def options(sim: dict[str, object], agent: Agent) -> str:
    return (
        f"ip=127.0.0.1\nipport={sim['port']}\nusername=admin\npassword={sim['password']}\n"
        f"lanplus=1\n{agent.extra_options}action=status\n"
    )


def status(agent: Agent, sim: dict[str, object]) -> float:
    result = call(agent.argv, options(sim, agent))
    check(result, f"{agent.name} status", STATUS_OUTPUT)
    return result.wall


def measure(agents: list[Agent], sim: dict[str, object], args: argparse.Namespace) -> list[Series]:
    series = [Series(agent.name, "status") for agent in agents]
    log(
        f"status: {args.warmup} warm-up and {args.runs} calls each of "
        f"{', '.join(a.name for a in agents)}"
    )
    for _ in range(args.warmup):
        for agent in agents:
            status(agent, sim)
    for index in range(args.runs):
        shift = index % len(agents)  # every agent takes every place in the order alike
        for position in [*range(shift, len(agents)), *range(shift)]:
            result = call(agents[position].argv, options(sim, agents[position]))
            check(result, f"{agents[position].name} status", STATUS_OUTPUT)
            series[position].add(result)
    return series


def trace(agent: Agent, sim: dict[str, object]) -> Trace:
    assert agent.interpreter is not None
    argv = [*agent.interpreter, "-X", "importtime", agent.argv[-1]]
    result = call(argv, options(sim, agent))
    check(result, f"{agent.name} status under -X importtime", STATUS_OUTPUT)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    return Trace(parse_imports(result.stderr), lines)


def results(
    agents: list[Agent],
    series: list[Series],
    traces: dict[str, Trace],
    info: dict[str, object],
    sim: dict[str, object],
    args: argparse.Namespace,
) -> dict[str, object]:
    by_name = {s.name: s for s in series}
    pairs = (
        (PACKAGE, THEIRS),
        (VENV, THEIRS),
        (WITH_SITE, THEIRS),
        (PACKAGE, VENV),
        (PACKAGE, WITH_SITE),
    )
    ratios = {
        f"{ours}/{base}": {
            "wall": ratio(by_name[ours].wall, by_name[base].wall),
            "cpu": ratio(by_name[ours].cpu, by_name[base].cpu),
        }
        for ours, base in pairs
    }
    return {
        "host": info,
        "bmc": {"simulator": "ipmi_sim", "address": "127.0.0.1", "port": sim["port"]},
        "runs": args.runs,
        "warmup": args.warmup,
        "unit": "ms",
        "agents": {a.name: {"argv": a.argv, "extra_options": a.extra_options} for a in agents},
        "series": [
            {
                "name": s.name,
                "wall": summary(s.wall),
                "cpu": summary(s.cpu),
                "slow_calls": slow_calls(s.wall),
                "wall_samples": [round(v * 1000, 3) for v in s.wall],
                "cpu_samples": [round(v * 1000, 3) for v in s.cpu],
            }
            for s in series
        ],
        "ratios_of_medians": ratios,
        "aim_status_half_of_fence_ipmilan": {
            "package": ratios[f"{PACKAGE}/{THEIRS}"]["wall"],
            "venv": ratios[f"{VENV}/{THEIRS}"]["wall"],
            "package_with_site": ratios[f"{WITH_SITE}/{THEIRS}"]["wall"],
            "limit": STATUS_AIM,
            "met": ratios[f"{PACKAGE}/{THEIRS}"]["wall"] <= STATUS_AIM,
        },
        "imports": {
            name: {
                "pyghmi_ipmi_command": t.imports.command,
                "cryptography_rust_bindings": t.imports.rust,
                "session_cumulative_ms": t.imports.session_ms,
                "total_cumulative_ms": t.imports.total_ms,
                "log_lines": t.log_lines,
            }
            for name, t in traces.items()
        },
    }


def render(data: dict[str, object], agents: list[Agent]) -> str:
    host, bmc, series = data["host"], data["bmc"], data["series"]
    ratios, aim, imports = (
        data["ratios_of_medians"],
        data["aim_status_half_of_fence_ipmilan"],
        data["imports"],
    )
    assert isinstance(host, dict) and isinstance(bmc, dict) and isinstance(series, list)
    assert isinstance(ratios, dict) and isinstance(aim, dict) and isinstance(imports, dict)
    lines = [
        f"fence status benchmark: the packaged fence_stackha_ipmi next to {THEIRS} (and the "
        f"venv's), ipmi_sim on {bmc['address']}:{bmc['port']}",
        f"{data['runs']} status calls per agent, interleaved (order rotating), {data['warmup']} "
        "warm-up each; options on stdin",
        f"{host['cpus']} CPUs, Python {host['python']}, stackha package {host['stackha']}, "
        f"fence-agents {host['fence_agents']}, ipmitool {host['ipmitool']}, "
        f"OpenIPMI {host['openipmi']}",
    ]
    for agent in agents:
        if agent.name == WITH_SITE:
            lines.append(f"  {agent.name:<13} {AGENT} under /usr/bin/python3 -I (site.py on)")
        elif agent.interpreter is None:
            lines.append(
                f"  {agent.name:<13} {' '.join(agent.argv)} (+ {agent.extra_options.strip()})"
            )
        else:
            lines.append(
                f"  {agent.name:<13} {agent.argv[-1]} under {' '.join(agent.interpreter)}: "
                f"pyghmi {host[f'{agent.name}_pyghmi']}, "
                f"cryptography {host[f'{agent.name}_cryptography']}"
            )
    differs = host["differs_from_checkout"]
    lines.append(
        "  the package's library and agent against this checkout's: "
        + (f"DIFFER in {', '.join(differs)}" if differs else "the same")
    )
    lines += [
        "",
        f"{'agent':<14} {'wall ms':>8} {'p90':>8} {'max':>8}  {'cpu ms':>8} {'p90':>8}  "
        f"{'slow':>7}",
        f"{'':<14} {'median':>8} {'':>8} {'':>8}  {'median':>8}",
    ]
    for s in series:
        wall, cpu = s["wall"], s["cpu"]
        lines.append(
            f"{s['name']:<14} {wall['median']:8.1f} {wall['p90']:8.1f} {wall['max']:8.1f}  "
            f"{cpu['median']:8.1f} {cpu['p90']:8.1f}  "
            f"{str(s['slow_calls']) + '/' + str(len(s['wall_samples'])):>7}"
        )
    lines += ["(slow: calls whose wall time is over 3x the median)", "", "ratios of medians:"]
    for pair, row in ratios.items():
        lines.append(f"  {pair:<24} wall {row['wall']:5.2f}x  cpu {row['cpu']:5.2f}x")
    lines += [
        "",
        f"aim (reported, not asserted): the package's status at most half of {THEIRS}'s wall "
        f"time: {'MET' if aim['met'] else 'NOT MET'} ({aim['package']:.3f}x, limit "
        f"{aim['limit']:.2f}x; the venv's {aim['venv']:.3f}x, the package's with site.py "
        f"{aim['package_with_site']:.3f}x)",
        "",
        "one status of each under its #! line with -X importtime (cumulative ms):",
        f"  {'':<8} {COMMAND_MODULE:<20} {SESSION_MODULE:<28} {'all imports':>11}  "
        "cryptography's Rust bindings",
    ]
    for name, row in imports.items():
        session = row["session_cumulative_ms"]
        lines.append(
            f"  {name:<8} {'IMPORTED' if row['pyghmi_ipmi_command'] else 'no':<20} "
            f"{'not imported' if session is None else f'{session:.1f}':<28} "
            f"{row['total_cumulative_ms']:11.1f}  "
            f"{'LOADED' if row['cryptography_rust_bindings'] else 'no'}"
        )
    for name, row in imports.items():
        log_lines = row["log_lines"]
        lines.append(f"  {name} agent's log: {'; '.join(log_lines) if log_lines else 'nothing'}")
    return "\n".join(lines) + "\n"


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: ipmi_sim is killed


def run(args: argparse.Namespace, package_version: str) -> int:
    ours = agent_interpreter(AGENT)
    if ours != PACKAGE_INTERPRETER:
        raise BenchError(
            f"{AGENT} starts {' '.join(ours)}, not {' '.join(PACKAGE_INTERPRETER)}: "
            "is it the package's?"
        )
    venv = venv_interpreter()
    agents = [
        Agent(PACKAGE, [AGENT], interpreter=ours),
        Agent(THEIRS, [INCUMBENT], extra_options=INCUMBENT_OPTIONS),
        Agent(VENV, [*venv, CHECKOUT_AGENT], interpreter=venv),
        Agent(WITH_SITE, ["/usr/bin/python3", "-I", AGENT]),
    ]
    info: dict[str, object] = {
        "cpus": os.cpu_count(),
        "python": version(["/usr/bin/python3", "-V"], r"Python (\S+)"),
        "stackha": package_version,
        "fence_agents": version(["dpkg-query", "-W", "fence-agents"], r"fence-agents\s+(\S+)"),
        "ipmitool": version(["/usr/bin/ipmitool", "-V"], r"version (\S+)"),
        "openipmi": version(["dpkg-query", "-W", "openipmi"], r"openipmi\s+(\S+)"),
        # Empty when the package measured holds this checkout's library and agent.
        "differs_from_checkout": package_differences(CHECKOUT, {AGENT: CHECKOUT_AGENT}),
    }
    for agent in agents:
        if agent.interpreter is not None:
            for name in ("pyghmi", "cryptography"):
                info[f"{agent.name}_{name}"] = distribution_of(agent.interpreter, name)
    with tempfile.TemporaryDirectory(prefix="stackha-bench-ipmi-") as tmp:
        log("starting ipmi_sim on 127.0.0.1")
        with running_ipmi_sim(Path(tmp)) as sim:
            series = measure(agents, sim, args)
            traces = {agent.name: trace(agent, sim) for agent in agents if agent.interpreter}
        log("ipmi_sim stopped")
    data = results(agents, series, traces, info, sim, args)
    print(render(data, agents), end="")
    if args.json:
        write_json(args.json, data)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root: the package is installed with apt when it is not")
        for path in (INCUMBENT, IPMI_SIM):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found (make deps installs fence-agents, openipmi)")
        if shutil.which("ipmitool", path="/usr/bin") is None:
            raise BenchError("ipmitool not found (make deps installs it)")
        with stackha_package(log) as package_version:
            return run(args, package_version)
    except BenchError as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
