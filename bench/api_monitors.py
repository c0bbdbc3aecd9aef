"""Benchmark: the ``monitor`` of every OpenStack API agent at depths 0 and 10, in one table,
next to curl of the same URL and ``python3 -I -S -c pass``.

The agents (keystone, placement-api, nova-api, glance-api, neutron-server, cinder-api: every
record of ``stackha.services.api_catalog``) share their code (``stackha.agents.api_service``); what
differs is the record each imports and the service behind it. The issue's bar is keystone's
depth-10 monitor (27 ms in ``openstack_api.py``, 2026-11-25): no agent should be slower. This
script measures, in one run and under the same conditions, for each service:

- ``SERVICE d0``: ``agents/SERVICE monitor`` with OCF_CHECK_LEVEL=0 (the uwsgi master and a
  worker alive, no request);
- ``SERVICE d10``: the same with OCF_CHECK_LEVEL=10 (also ``GET`` of the record's version path
  on the service's address: keystone ``/v3``, the others ``/``);
- ``SERVICE curl``: ``curl -q -sS -f -o /dev/null URL``, the same request, the floor of depth
  10 (``-f``: an HTTP error status, 400 or more, aborts the run; glance's and cinder's
  ``300 Multiple Choices`` is their version document);

and once ``python3 -I -S -c pass`` (Python's floor: no site at all) and the agents' own
interpreter line with ``-c pass`` (what every agent call starts before its first import). It
prints the medians and p90s of every command, then one table, a row per service: depth 0 and
depth 10 (wall median and p90, CPU median), curl, the ratios of each depth's wall median to
curl's and to ``python3 -I -S``'s, and depth 10 against keystone's of the same run and against
the 27 ms bar; last, from one depth-10 monitor of
each agent under ``-X importtime``, which heavy modules it imports, what stackha costs, and the
modules it imports that keystone's does not.

The agents are this checkout's (``agents/NAME``), run as ``stackha install`` would install
them: under the interpreter that runs this script, with ``-I`` (``stackha.install``'s ``#!``
line); nothing is installed. The services are private ones on loopback, each in its own
directory with Debian's uwsgi ini trimmed as the lab trims it (its record's workers), and each
is started with its agent's ``start`` and stopped with its ``stop`` (then anything left of it by
pid), whatever happens:

- keystone and nova-api as ``openstack_api.py`` prepares them, as they were when keystone's
  27 ms was measured (the test sandbox, ``tests/openstack_sandbox.py``: SQLite, keystone's
  schema and bootstrap, which nova's service user needs, nova's two schemas, without which
  nova's application does not load);
- placement-api, glance-api, neutron-server, cinder-api from their records: the configuration
  file of ``lab.config`` (as ``stackha.lab.openstack.service_config`` writes it) with SQLite
  databases in the directory, oslo.messaging's in-process ``fake://`` transport, the records'
  /var/lib paths moved into the directory and a ``[keystone_authtoken]`` that names the
  keystone above (with a random password of no user: nothing here asks for a token); the
  record's companion files copied from Debian's /etc with their /etc paths moved likewise.
  Only the schema an application needs to load is made (found by trying: without it each
  uwsgi worker fails to load the application, and uwsgi answers 500 or not at all):
  glance-api none; placement-api and cinder-api their records' ``db sync`` against SQLite;
  neutron-server the tables of its models, as neutron's unit tests make them, because its
  migrations do not run on SQLite.

Every command runs ``--runs`` times (default 200) interleaved round-robin after ``--warmup``
rounds (bench/measure.py). Wall time is spawn to reap; CPU time (user + sys) is the child's own,
from os.wait4 (uwsgi's work answering is on neither side).

Run as root (the agents start each service as its user), on a checkout after ``make venv``,
with the packages of the six services installed (2-3 minutes with 200 runs)::

    .venv/bin/python bench/api_monitors.py [--runs 200] [--warmup 2] [--json FILE]

Standard library, stackha and the test sandbox; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import os
import platform
import pwd
import secrets
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py, and openstack_api
# the keystone and nova-api benchmark; tests/ is on PYTHONPATH (the Makefile's BENCH) for the
# sandbox.
from measure import (
    IMPORT_LINE,
    BenchError,
    Command,
    ImportReport,
    base_env,
    interleaved,
    p90,
    parse_args,
    read_importtime,
    render_table,
    run_once,
    samples_json,
    write_json,
)
from openstack_api import (
    ACTION_TIMEOUT,
    CURL,
    HEAVY_MODULES,
    SYSTEM_PYTHON,
    Service,
    log,
    package_versions,
    prepared,
    start_service,
    stop_service,
    terminate,
)

# isort: split
# tests/ is on PYTHONPATH (make bench; by hand: PYTHONPATH=tests) for the sandbox.
from agent_runs import free_port
from openstack_sandbox import (
    ADDRESS,
    SQLITE_THREADS,
    check_reachable,
    prepare_keystone,
    prepare_nova_api,
    reachable_directory,
)
from stackha.lab.openstack import keystone_authtoken, trimmed_uwsgi_ini
from stackha.services.api_catalog import (
    GLANCE_API,
    IDENTITY,
    NEUTRON_SERVER,
    NOVA_API,
    SERVICES,
    ApiService,
)

CHECKOUT = Path(__file__).resolve().parents[1]
# The #! line `stackha install` writes (stackha.install): this interpreter, isolated.
AGENT_PYTHON = (sys.executable, "-I")
# The bar: keystone's depth-10 monitor, openstack_api.py, 2026-11-25 (ms).
BAR_MS = 27.0
# -q: no ~/.curlrc; -sS: quiet but for errors; -f: an HTTP error status (400 or more) exits 22,
# so a broken service aborts the run instead of being timed.
CURL_GET = [CURL, "-q", "-sS", "-f", "-o", "/dev/null"]
FLOOR_BARE = "python3 -I -S -c pass"
FLOOR_AGENT = "agent python -I -c pass"
PACKAGES = ("uwsgi-core", "curl")
# neutron's tables from its models (neutron.tests.unit.testlib_api does the same); argv[1]: the
# database URL.
NEUTRON_TABLES = (
    "import sys; from sqlalchemy import create_engine; "
    "from neutron.db.migration.models import head; "
    "head.get_metadata().create_all(create_engine(sys.argv[1]))"
)
BAR = f"> {BAR_MS:g}"


@dataclass
class Row:
    """One service's commands."""

    service: Service
    api: ApiService
    depth0: Command
    depth10: Command
    curl: Command


def parse_options(argv: Optional[list[str]] = None) -> argparse.Namespace:
    return parse_args(__doc__.split("\n", 1)[0], argv)


# -- the four services without a sandbox of their own -----------------------------------------


def _owned_directory(path: Path, account: pwd.struct_passwd, mode: int) -> Path:
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)  # mkdir's mode is filtered by the umask
    return path


def _write(path: Path, text: str, mode: int, group: int = 0) -> None:
    # Created with its final mode: the config holds a password.
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchown(handle.fileno(), 0, group)
        handle.write(text)


def sqlite_url(state: Path, database: str) -> str:
    return f"sqlite:///{state}/{database}.sqlite{SQLITE_THREADS}"


def moved_into(api: ApiService, text: str, state: Path) -> str:
    """``text`` with the record's /var/lib directory (its state) replaced by ``state``."""
    for path in api.lab.state_dirs:
        if path.startswith("/var/lib/"):
            text = text.replace(path, str(state))
    return text


def record_config(api: ApiService, state: Path, keystone_url: str) -> str:
    """``api``'s configuration file as the lab's (its record's ``lab.config``, then
    ``[keystone_authtoken]``), with SQLite databases in ``state``, the in-process fake
    transport, loopback as the node's address and the record's /var/lib directory moved into
    ``state``."""
    values = {"address": ADDRESS, "transport_url": "fake://"}
    for database in api.lab.databases:
        values[f"db_{database}"] = sqlite_url(state, database)
    lines = [f"# {api.name}'s lab configuration (stackha.lab.openstack), for bench/api_monitors.py"]
    for section, options in api.lab.config:
        lines.append(f"[{section}]")
        for key, value in options:
            try:
                text = value.format_map(values)
            except KeyError as err:
                raise BenchError(
                    f"{api.name}: [{section}] {key} needs {err}, not known here"
                ) from None
            lines.append(f"{key} = {moved_into(api, text, state)}")
        lines.append("")
    text = "\n".join(lines) + "\n"
    if api.lab.authtoken:
        # No user of that name in keystone: nothing at depths 0 and 10 asks for a token.
        text += keystone_authtoken(keystone_url, api.user, secrets.token_urlsafe(18))
    return text


def schema_commands(api: ApiService, config: Path, state: Path) -> list[list[str]]:
    """What makes the database schema ``api``'s WSGI application needs to load, if any: its
    record's setup commands pointed at ``config``, or for neutron-server its models' tables."""
    if api is GLANCE_API:
        return []  # loads and answers GET / with an empty database
    if api is NEUTRON_SERVER:
        # neutron-db-manage's migrations do not run on SQLite (alembic: "No support for ALTER
        # of constraints in SQLite dialect"); the tables of its models do, as in neutron's own
        # unit tests. Without them each uwsgi worker dies loading the application ("no such
        # table: ml2_vxlan_allocations": the ML2 VXLAN driver syncs its ranges at start).
        return [[SYSTEM_PYTHON, "-c", NEUTRON_TABLES, sqlite_url(state, *api.lab.databases)]]
    # placement-api (its traits are synced at start) and cinder-api (its services table is
    # read at start): without the schema uwsgi answers 500. Their setup is `X-manage db sync`.
    return [[step.argv[0], "--config-file", str(config), *step.argv[1:]] for step in api.lab.setup]


def run_as(user: str, argv: list[str], what: str) -> None:
    """``argv`` as ``user`` (so what it makes is the service's), or BenchError with the end of
    its output."""
    account = pwd.getpwnam(user)
    try:
        result = subprocess.run(
            argv,
            env={**base_env(), "HOME": account.pw_dir},
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=ACTION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"{what} failed: {err}") from err
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise BenchError(f"{what} exited {result.returncode}:\n{tail}")


def prepare_record_service(api: ApiService, directory: Path, keystone_url: str) -> dict[str, str]:
    """A private ``api`` in ``directory`` (made here), prepared but not running: its record's
    configuration file (:func:`record_config`) under its own name, the companion files of its
    record copied from Debian's, Debian's uwsgi ini trimmed to the record's workers, logging to
    log/uwsgi.log; the agent's parameters."""
    account = pwd.getpwnam(api.user)
    directory.mkdir(mode=0o755)
    check_reachable(directory)
    state = _owned_directory(directory / "state", account, 0o700)
    logs = _owned_directory(directory / "log", account, 0o755)
    run = _owned_directory(directory / "run", account, 0o755)
    for lock_dir in api.lab.lock_dirs:
        _owned_directory(Path(moved_into(api, lock_dir, state)), account, 0o750)
    config = directory / os.path.basename(api.config)
    _write(config, record_config(api, state, keystone_url), 0o640, account.pw_gid)
    # Paths into Debian's config directory (the health check's switch file, neutron's paste
    # file in its uwsgi ini) name the copies here.
    here = f"{api.config_dir}/", f"{directory}/"
    for name in api.companions:
        text = Path(api.config_dir, name).read_text(encoding="utf-8").replace(*here)
        _write(directory / name, text, 0o640, account.pw_gid)
    log_file = logs / "uwsgi.log"
    debian_ini = Path(api.uwsgi_ini)
    processes, threads = api.lab.workers
    settings = {"logto": str(log_file), "chdir": str(state)}
    ini_text = debian_ini.read_text(encoding="utf-8").replace(*here)
    ini = directory / debian_ini.name
    ini.write_text(
        f"# Debian's {debian_ini}, trimmed for bench/api_monitors.py.\n"
        + trimmed_uwsgi_ini(ini_text, processes, threads, settings)
    )
    ini.chmod(0o644)
    for argv in schema_commands(api, config, state):
        run_as(api.user, argv, f"{api.name}: {argv[0]}")
    return {
        "uwsgi_ini": str(ini),
        "config": str(config),
        "address": ADDRESS,
        "port": str(free_port()),
        "pidfile": str(run / f"{api.name}.pid"),
        "log_file": str(log_file),
    }


def prepare(api: ApiService, root: Path, keystone: Optional[Service]) -> dict[str, str]:
    """The agent's parameters of a private ``api`` in ``root``/NAME; keystone first (the
    others are pointed at it, and nova-api's sandbox makes its service user there)."""
    directory = root / api.name
    if api is IDENTITY:
        return prepared(prepare_keystone, directory)
    if keystone is None:
        raise BenchError(f"{api.name} needs keystone prepared first")
    if api is NOVA_API:
        return prepared(prepare_nova_api, directory, keystone.prepared)
    return prepared(prepare_record_service, api, directory, keystone.url)


# -- what is measured ------------------------------------------------------------------------


def rows_for(services: list[tuple[Service, ApiService]]) -> list[Row]:
    rows = []
    for service, api in services:
        url = f"{service.url}{api.version_path}"
        rows.append(
            Row(
                service,
                api,
                Command(f"{api.name} d0", service.argv("monitor"), service.env("monitor", 0)),
                Command(f"{api.name} d10", service.argv("monitor"), service.env("monitor", 10)),
                Command(f"{api.name} curl", [*CURL_GET, url], base_env()),
            )
        )
    return rows


def floors() -> list[Command]:
    env = base_env()
    return [
        Command(FLOOR_BARE, [SYSTEM_PYTHON, "-I", "-S", "-c", "pass"], env),
        Command(FLOOR_AGENT, [*AGENT_PYTHON, "-c", "pass"], env),
    ]


def imported_modules(stderr: str) -> list[str]:
    """Every module ``-X importtime`` reports, in its order."""
    found = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match:
            found.append(match.group(4))
    return found


@dataclass
class Imports:
    report: ImportReport
    modules: list[str]


def imports_of(row: Row) -> Imports:
    """One depth-10 monitor under -X importtime."""
    argv = [*AGENT_PYTHON, "-X", "importtime", row.service.agent, "monitor"]
    result = run_once(
        argv,
        row.service.env("monitor", 10),
        f"{row.api.name} monitor -X importtime",
        timeout=ACTION_TIMEOUT,
    )
    return Imports(read_importtime(result.stderr, HEAVY_MODULES), imported_modules(result.stderr))


def median_ms(command: Command) -> float:
    return statistics.median(command.wall) * 1000


def cpu_ms(command: Command) -> float:
    return statistics.median(command.cpu) * 1000


def versions_of(rows: list[Row]) -> dict[str, str]:
    packages = [*(package for row in rows for package in row.api.lab.packages), *PACKAGES]
    return package_versions(packages)


def summary_table(rows: list[Row], bare: Command) -> list[str]:
    """The one table: per service, depth 0 and 10 (wall median and p90, CPU median), curl, the
    ratios of the wall medians to curl and to ``python3 -I -S``, and depth 10 against keystone's
    of this run and against the bar."""
    floor = median_ms(bare)
    keystone = median_ms(next(row for row in rows if row.api is IDENTITY).depth10)
    width = max(len(row.api.name) for row in rows)
    lines = [
        f"{'':<{width}}  {'depth 0 ms':^20}  {'depth 10 ms':^20}  {'curl':>5}  "
        f"{'depth 0 /':^11}  {'depth 10 /':^11}  {'depth 10 /':>10}  {BAR:>5}",
        f"{'service':<{width}}  {'median':>6} {'p90':>6} {'cpu':>6}  {'median':>6} {'p90':>6} "
        f"{'cpu':>6}  {'ms':>5}  {'curl':>5} {'py':>5}  {'curl':>5} {'py':>5}  "
        f"{'keystone':>10}  {'ms?':>5}",
    ]
    for row in rows:
        d0, d10, curl = median_ms(row.depth0), median_ms(row.depth10), median_ms(row.curl)
        lines.append(
            f"{row.api.name:<{width}}  "
            f"{d0:6.1f} {p90(row.depth0.wall) * 1000:6.1f} {cpu_ms(row.depth0):6.1f}  "
            f"{d10:6.1f} {p90(row.depth10.wall) * 1000:6.1f} {cpu_ms(row.depth10):6.1f}  "
            f"{curl:5.1f}  {d0 / curl:4.2f}x {d0 / floor:4.2f}x  "
            f"{d10 / curl:4.2f}x {d10 / floor:4.2f}x  {d10 / keystone:9.2f}x  "
            f"{'yes' if d10 > BAR_MS else 'no':>5}"
        )
    lines.append(
        f"(wall times but cpu; py: {FLOOR_BARE}, median {floor:.1f} ms; ratios of wall medians)"
    )
    return lines


def imports_table(rows: list[Row], imports: dict[str, Imports]) -> list[str]:
    keystone = set(imports[IDENTITY.name].modules)
    width = max(len(row.api.name) for row in rows)
    lines = [
        f"imports of one depth-10 monitor each (-X importtime; heavy: {', '.join(HEAVY_MODULES)}):",
        f"{'agent':<{width}}  {'heavy':<6}  {'stackha ms':>10}  {'all ms':>7}  "
        "modules keystone's monitor does not import",
    ]
    for row in rows:
        found = imports[row.api.name]
        extra = [name for name in found.modules if name not in keystone]
        lines.append(
            f"{row.api.name:<{width}}  {', '.join(found.report.heavy) or 'none':<6}  "
            f"{found.report.stackha_ms:10.1f}  {found.report.total_ms:7.1f}  "
            f"{', '.join(extra) or '-'}"
        )
    return lines


def render(
    rows: list[Row],
    others: list[Command],
    imports: dict[str, Imports],
    setup: dict[str, float],
    args: argparse.Namespace,
) -> str:
    commands = [command for row in rows for command in (row.depth0, row.depth10, row.curl)]
    versions = versions_of(rows)
    lines = [
        f"API monitor benchmark: {args.runs} calls per command, interleaved, {args.warmup} "
        f"warm-up rounds; {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "packages: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"agents: {CHECKOUT}/agents/NAME under {' '.join(AGENT_PYTHON)}; services on "
        f"{ADDRESS}, SQLite, started by the agents' start",
        "setup (s): " + ", ".join(f"{what} {seconds:.1f}" for what, seconds in setup.items()),
        "",
        *render_table([*commands, *others], max(len(c.name) for c in [*commands, *others])),
        "",
        *summary_table(rows, others[0]),
        "",
        *imports_table(rows, imports),
    ]
    return "\n".join(lines)


def to_json(
    rows: list[Row],
    others: list[Command],
    imports: dict[str, Imports],
    setup: dict[str, float],
    args: argparse.Namespace,
) -> dict[str, object]:
    floor = median_ms(others[0])
    keystone = next(row for row in rows if row.api is IDENTITY)
    return {
        "runs": args.runs,
        "warmup": args.warmup,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "agent_python": list(AGENT_PYTHON),
        "versions": versions_of(rows),
        "setup_s": setup,
        "unit": "ms",
        "bar_ms": BAR_MS,
        "services": {
            row.api.name: {
                "url": f"{row.service.url}{row.api.version_path}",
                "depth0_over_curl": median_ms(row.depth0) / median_ms(row.curl),
                "depth0_over_python": median_ms(row.depth0) / floor,
                "depth10_over_curl": median_ms(row.depth10) / median_ms(row.curl),
                "depth10_over_python": median_ms(row.depth10) / floor,
                "depth10_over_keystone": median_ms(row.depth10) / median_ms(keystone.depth10),
                "imports": {
                    "heavy": imports[row.api.name].report.heavy,
                    "stackha_cumulative_ms": imports[row.api.name].report.stackha_ms,
                    "total_cumulative_ms": imports[row.api.name].report.total_ms,
                },
            }
            for row in rows
        },
        "commands": {
            command.name: {"argv": command.argv, "runs": len(command.wall), **samples_json(command)}
            for command in [
                *(c for row in rows for c in (row.depth0, row.depth10, row.curl)),
                *others,
            ]
        },
    }


def errors_logged(path: str, lines: int = 10) -> str:
    """The last CRITICAL and ERROR lines of uwsgi's log (the service's own log goes there too):
    why a worker could not load the application."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return f"({path}: {err.strerror})"
    found = [line for line in text.splitlines() if " CRITICAL " in line or " ERROR " in line]
    return "\n".join(found[-lines:]) or f"(nothing logged as an error in {path})"


def run(args: argparse.Namespace) -> int:
    setup: dict[str, float] = {}
    started_services: list[Service] = []
    services: list[tuple[Service, ApiService]] = []
    with reachable_directory("stackha-bench-api-") as root:
        try:
            keystone: Optional[Service] = None
            for api in SERVICES:
                log(f"preparing {api.name}")
                started = time.monotonic()
                parameters = prepare(api, root, keystone)
                setup[f"prepare {api.name}"] = time.monotonic() - started
                service = Service(
                    api.name, str(CHECKOUT / "agents" / api.name), parameters, AGENT_PYTHON
                )
                if api is IDENTITY:
                    keystone = service
                started_services.append(service)
                log(f"starting {api.name} with the agent's start")
                try:
                    setup[f"start {api.name}"] = start_service(service)
                except BenchError as err:
                    raise BenchError(f"{err}\n{errors_logged(parameters['log_file'])}") from None
                services.append((service, api))
            rows = rows_for(services)
            others = floors()
            commands = [c for row in rows for c in (row.depth0, row.depth10, row.curl)] + others
            log(f"measuring {len(commands)} commands x {args.runs}")
            interleaved(commands, args.runs, args.warmup, timeout=ACTION_TIMEOUT)
            log("imports of each depth-10 monitor (-X importtime)")
            imports = {row.api.name: imports_of(row) for row in rows}
        finally:
            for service in reversed(started_services):
                log(f"stopping {service.name} with the agent's stop")
                stop_service(service)
    print(render(rows, others, imports, setup, args))
    if args.json:
        write_json(args.json, to_json(rows, others, imports, setup, args))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_options(argv)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root: the agents start the services as their users")
        for path in (SYSTEM_PYTHON, CURL, "/usr/bin/uwsgi"):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found")
        for api in SERVICES:
            if not os.path.isfile(api.uwsgi_ini):
                raise BenchError(f"{api.uwsgi_ini} not found: install {' '.join(api.lab.packages)}")
        signal.signal(signal.SIGTERM, terminate)
        return run(args)
    except BenchError as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
