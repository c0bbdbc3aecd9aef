"""Timing of commands for the monitor benchmarks, and the summaries of what was timed.

Shared by ``monitor_haproxy.py``, ``openstack_api.py``, ``package_monitor.py`` and the fence
benchmarks: their options, the clean agent environment, running a command that must exit 0, the
interleaved round-robin runner (wall time around spawn-to-reap, CPU time from ``os.wait4``),
median/p90 summaries, the table of them, the reading of ``python -X importtime``, an agent's
``#!`` line, the stackha Debian package for the length of a run, and the JSON file. What each
benchmark compares, and how it words its report, stays in the benchmark.

The benchmarks run as ``.venv/bin/python bench/X.py``, so ``bench/`` is ``sys.path[0]`` and they
import this module as plain ``measure``: no ``sys.path`` edit, no package.

Standard library only (:func:`stackha_package` imports stackha when called); Python 3.9 or
later.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

OCF_ROOT = "/usr/lib/ocf"

# "import time:       946 |       2880 | stackha.services.haproxy"; nesting is two spaces a level.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


# What debian/install-python-program adds after an installed program's "from __future__ import
# annotations" (its interpreter line is python3 -IS): not part of the checkout's agent.
INSTALLED_PATH_LINES = (
    "import sys  # noqa: E402 - installed with python3 -IS (debian/install-python-program)\n"
    'sys.path.append("/usr/lib/python3/dist-packages")  # noqa: E402\n'
)


class BenchError(Exception):
    """A precondition or a command failed; the message says which and why."""


@dataclass
class Command:
    name: str
    argv: list[str]
    env: dict[str, str]
    wall: list[float] = field(default_factory=list)  # seconds
    cpu: list[float] = field(default_factory=list)  # seconds, user + sys
    # When each call differs (a new token each): the argv of every call, warm-up first.
    series: list[list[str]] = field(default_factory=list)

    def next_argv(self) -> list[str]:
        return self.series.pop(0) if self.series else self.argv


@dataclass
class ImportReport:
    heavy: list[str]  # the modules asked about that it imports, in the order asked
    stackha_ms: float  # cumulative import time of the top-level stackha imports
    total_ms: float  # cumulative import time of every top-level import
    site_ms: float = 0.0  # cumulative import time of site (and the .pth files it runs)


def parse_args(
    description: str,
    argv: Optional[list[str]] = None,
    runs_help: str = "measured calls per command (default 200)",
) -> argparse.Namespace:
    """``--runs``, ``--warmup`` and ``--json``, checked; exits with usage on a bad value."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=200, help=runs_help)
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


def base_env() -> dict[str, str]:
    """A clean environment, close to what pacemaker-execd gives an agent (no proxy variables:
    curl goes straight to 127.0.0.1)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "OCF_ROOT": OCF_ROOT,
    }


def run_once(
    argv: list[str], env: dict[str, str], what: str, *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; raise BenchError with its output unless it exits 0."""
    try:
        result = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"{what} failed: {err}") from err
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip() or "(no output)"
        raise BenchError(f"{what} exited {result.returncode}, expected 0:\n{output}")
    return result


def install_agents(agents: tuple[str, ...], *, timeout: float) -> None:
    """``stackha install`` (the script next to sys.executable); BenchError unless ``agents``
    are then installed."""
    stackha = os.path.join(os.path.dirname(sys.executable), "stackha")
    if not os.access(stackha, os.X_OK):
        raise BenchError(f"{stackha} not found: run 'make venv' and use the venv's python")
    run_once([stackha, "install"], base_env(), "stackha install", timeout=timeout)
    for agent in agents:
        if not os.access(agent, os.X_OK):
            raise BenchError(f"stackha install did not install {agent}")


def agent_interpreter(agent: str) -> list[str]:
    """The ``#!`` line of an installed agent as argv: ``stackha install`` writes the virtualenv's
    python with ``-I``, the Debian package ``/usr/bin/python3 -I``; every call starts it."""
    with open(agent, encoding="utf-8") as handle:
        first = handle.readline()
    if not first.startswith("#!"):
        raise BenchError(f"{agent} has no #! line")
    return first[2:].split()


@contextlib.contextmanager
def stackha_package(progress: Callable[[str], None]) -> Iterator[str]:
    """The stackha Debian package installed for the length of the block; yields its version.

    A package already installed is measured as it is and left installed. Otherwise it is built
    from this checkout's working tree (``scripts/build-deb``, into a temporary directory),
    installed with apt (``stackha.lab.package.install``, which first removes a development
    install it finds in /usr/lib/ocf: ``progress`` says so), and purged at the end whatever
    happens; a development install it removed is then written again with ``stackha install``
    (the script next to sys.executable), so the machine is left as it was found. Raises
    BenchError when building, installing or purging fails.
    """
    from stackha.install import PACKAGED_OCF_ROOT, InstallError, read_manifest
    from stackha.lab import package
    from stackha.lab.namespaces import LabError
    from stackha.runner import SubprocessRunner

    runner = SubprocessRunner()
    version = package.installed_version(runner)
    if version is not None:
        progress(f"package: stackha {version} is installed: measured as it is, left installed")
        yield version
        return
    try:
        had_development_install = bool(read_manifest(PACKAGED_OCF_ROOT))
        with tempfile.TemporaryDirectory(prefix="stackha-bench-deb-") as build_dir:
            progress("package: not installed: building it from this checkout (scripts/build-deb)")
            deb = package.build(runner, Path(build_dir))
            installed = package.install(runner, deb, progress)
    except (LabError, InstallError) as err:
        raise BenchError(f"the stackha package: {err}") from err
    try:
        yield package.deb_version(deb)
    finally:
        if installed:
            progress("package: purging it again (this run installed it)")
            try:
                package.remove(runner)
            except LabError as err:
                raise BenchError(str(err)) from err
        if had_development_install:
            progress("package: writing the development install again (stackha install)")
            install_agents((), timeout=600.0)


def package_differences(checkout: Path, agents: dict[str, str]) -> list[str]:
    """The files of the installed package's library (/usr/lib/python3/dist-packages/stackha)
    whose content differs from this checkout's lib/stackha, or that only one side has (stackha.lab
    is in the stackha-lab package, byte-code in neither), then the installed ``agents`` (path →
    the checkout's file) whose body below the ``#!`` line differs: what was measured is not the
    checkout when this is not empty."""
    import filecmp

    def body(path: str) -> str:
        with open(path, encoding="utf-8") as handle:
            return handle.read().split("\n", 1)[-1].replace(INSTALLED_PATH_LINES, "", 1)

    changed_agents = [agent for agent, source in agents.items() if body(agent) != body(source)]

    installed, source = Path("/usr/lib/python3/dist-packages/stackha"), checkout / "lib" / "stackha"
    names = {
        str(path.relative_to(root))
        for root in (installed, source)
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts and path.relative_to(root).parts[0] != "lab"
    }
    return (
        sorted(
            f"stackha/{name}"
            for name in names
            if not (installed / name).is_file()
            or not (source / name).is_file()
            or not filecmp.cmp(installed / name, source / name, shallow=False)
        )
        + changed_agents
    )


def measure_once(command: Command, timeout: float) -> None:
    """One call: wall time around spawn-to-reap, CPU time from the child's rusage."""
    argv = command.next_argv()
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
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
        run_once(argv, command.env, command.name, timeout=timeout)
        raise BenchError(f"{command.name} exited {proc.returncode}, expected 0")
    command.wall.append(wall)
    command.cpu.append(usage.ru_utime + usage.ru_stime)


def interleaved(commands: list[Command], runs: int, warmup: int, *, timeout: float) -> None:
    """``warmup`` uncounted rounds, then ``runs`` rounds of every command in turn, so that
    machine noise hits every command alike. ``timeout`` bounds the run that captures a failed
    command's output."""
    for _ in range(warmup):
        for command in commands:
            measure_once(command, timeout)
    for command in commands:
        command.wall.clear()
        command.cpu.clear()
    for _ in range(runs):
        for command in commands:
            measure_once(command, timeout)


def read_importtime(stderr: str, heavy: tuple[str, ...]) -> ImportReport:
    """What ``python -X importtime`` wrote: which of the ``heavy`` modules (or their
    submodules) were imported, and the cumulative time of the top-level imports."""
    imported: set[str] = set()
    stackha_us = total_us = site_us = 0
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, indent, module = int(match.group(2)), match.group(3), match.group(4)
        for name in heavy:
            if module == name or module.startswith(f"{name}."):
                imported.add(name)
        if len(indent) == 0:  # a top-level import: its cumulative time includes its children
            total_us += cumulative
            if module == "stackha" or module.startswith("stackha."):
                stackha_us += cumulative
            if module == "site":
                site_us += cumulative
    return ImportReport(
        heavy=[name for name in heavy if name in imported],
        stackha_ms=stackha_us / 1000,
        total_ms=total_us / 1000,
        site_ms=site_us / 1000,
    )


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def summary(values: list[float]) -> dict[str, float]:
    """Median, p90 and mean, in milliseconds."""
    return {
        "median": statistics.median(values) * 1000,
        "p90": p90(values) * 1000,
        "mean": statistics.fmean(values) * 1000,
    }


def samples_json(command: Command) -> dict[str, object]:
    """A command's summaries and raw samples, in ms, for the JSON file."""
    return {
        "wall": summary(command.wall),
        "cpu": summary(command.cpu),
        "wall_samples": [round(v * 1000, 4) for v in command.wall],
        "cpu_samples": [round(v * 1000, 4) for v in command.cpu],
    }


def render_table(commands: list[Command], width: int) -> list[str]:
    """Median and p90 of wall and CPU time per command, names padded to ``width``."""
    lines = [
        f"{'command':<{width}}  {'wall ms':>8} {'p90':>8}  {'cpu ms':>8} {'p90':>8}",
        f"{'':<{width}}  {'median':>8} {'':>8}  {'median':>8} {'':>8}",
    ]
    for command in commands:
        wall, cpu = summary(command.wall), summary(command.cpu)
        lines.append(
            f"{command.name:<{width}}  {wall['median']:8.2f} {wall['p90']:8.2f}  "
            f"{cpu['median']:8.2f} {cpu['p90']:8.2f}"
        )
    return lines


def write_json(path: str, numbers: dict[str, object]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(numbers, handle, indent=2)
        handle.write("\n")
    print(f"\nnumbers written to {path}")
