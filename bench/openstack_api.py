"""Benchmark: the cost of one ``monitor`` of ocf:stackha:keystone and ocf:stackha:nova-api next
to curl of the same URL.

Pacemaker runs an agent's monitor every few seconds on every node, for the life of the cluster,
so its per-call cost matters. The version check of depth 10 is one HTTP request made over a
plain socket (no openstack CLI, no urllib): it should cost little more than starting Python.
This script measures, in one run and under the same conditions:

- ``keystone monitor depth 0``: /usr/lib/ocf/resource.d/stackha/keystone monitor,
  OCF_CHECK_LEVEL=0 (the uwsgi master and a worker alive, no request);
- ``keystone monitor depth 10``: the same with OCF_CHECK_LEVEL=10 (also ``GET /v3`` on the
  service's address);
- ``curl GET keystone /v3``: ``curl -q -sS -f -o /dev/null http://127.0.0.1:PORT/v3``, the same
  request, the floor of depth 10;
- ``nova-api monitor depth 0`` and ``depth 10`` (``GET /``) and ``curl GET nova-api /``, alike;
- ``python3 -c pass``: Python's floor on this machine, site-packages and their .pth files
  included; ``python3 -I -S -c pass`` beside it shows how much of that is site; and the
  interpreter of the agents' own ``#!`` line (the virtualenv's python, ``-I``) with ``-c pass``.

Depth 20 (after the version check) makes a token (keystone: ``POST /v3/auth/tokens`` on its own
address; nova-api: a token from keystone, then ``GET /v2.1/flavors`` with it), and each token
costs keystone a password hash: it is measured apart, ``--runs``/10 times (at least 5), next to
curl of the token POST (the JSON body sent from a 0600 file with ``--data-binary @FILE``: the
password is never on a command line) and, for nova-api, curl of ``GET /v2.1/flavors`` with the
token header read from a 0600 file (``-H @FILE``). nova's keystonemiddleware keeps the tokens it
validated, so a token sent again costs nova no request to keystone; the monitor's is new every
call, so the floor's is too (``new token``: one issued beforehand for each call), and the
``one token`` row shows the difference. The files live in a private temporary directory,
deleted at the end. "curl, every request" adds up the medians of curl of each request a
depth-20 monitor makes (its version check included).

Before measuring it makes sure the stackha Debian package is installed (bench/measure.py's
``stackha_package``), prepares a private keystone and nova-api on SQLite
with the test sandbox (``tests/openstack_sandbox.py``: databases, Fernet keys, the admin and a
``nova`` service user with random passwords, Debian's uwsgi ini trimmed to 2 workers, loopback
ports) and starts both through the installed agents' own ``start`` action. Both are stopped with
their ``stop`` action at the end, whatever happens (also on Ctrl-C and SIGTERM), then anything
left of them is stopped by pid. Every measured command must exit 0 (curl -f: an HTTP error is a
failure), or the benchmark aborts with its output.

Each command runs ``--runs`` times (default 200), interleaved round-robin so that machine noise
hits every command alike, after ``--warmup`` rounds that are not counted. Per call it records
the wall time (time.perf_counter around the child, spawn to reap) and the CPU time (user + sys)
of the child and the descendants it waited for, from os.wait4; what uwsgi does to answer is in
neither side's CPU. It prints the median and p90 of each command, the ratios of each monitor to
its curl floor and to the Python floors, and which heavy modules (lxml, urllib.request,
http.client, ssl, email) each monitor imports (one run of each under ``python -X importtime``):
none at depths 0 and 10; depth 20 posts its token through urllib.

Run as root, on a checkout after ``make venv`` (2-3 minutes)::

    .venv/bin/python bench/openstack_api.py
    .venv/bin/python bench/openstack_api.py --runs 200 --json openstack-api.json

Standard library, stackha and the test sandbox; Python 3.9 or later.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Callable, Optional

# bench/ is sys.path[0] when this script runs: measure is bench/measure.py.
from measure import (
    OCF_ROOT,
    BenchError,
    Command,
    ImportReport,
    agent_interpreter,
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

# The test sandbox is the one place that knows how to prepare a private keystone and nova-api
# (schemas, Fernet keys, service user, a trimmed uwsgi ini); it lives with the tests, whose
# directory is on PYTHONPATH as it is on pytest's path (see bench/README.md).
from openstack_sandbox import (
    agent_parameters,
    prepare_keystone,
    prepare_nova_api,
    reachable_directory,
    stop_leftovers,
    wait_until_all_workers_loaded,
)
from stackha.services.openstack_api import (
    issue_token,
    read_openstack_credentials,
    token_request_body,
    token_url,
)

KEYSTONE_AGENT = f"{OCF_ROOT}/resource.d/stackha/keystone"
NOVA_AGENT = f"{OCF_ROOT}/resource.d/stackha/nova-api"
SYSTEM_PYTHON = "/usr/bin/python3"
CURL = "/usr/bin/curl"
ACTION_TIMEOUT = 180.0  # seconds for start (its own budget is 120 s), stop and one-off runs
# What Pacemaker would pass: the agents' declared timeouts and intervals, in ms.
START_TIMEOUT_MS = "120000"
STOP_TIMEOUT_MS = "60000"
MONITOR_META = {0: ("10000", "30000"), 10: ("30000", "30000"), 20: ("120000", "60000")}
# -q: no ~/.curlrc; -sS: quiet but for errors; -f: an HTTP error status exits 22, so a broken
# service aborts the run instead of being timed.
CURL_GET = [CURL, "-q", "-sS", "-f", "-o", "/dev/null"]
HEAVY_MODULES = ("lxml", "urllib.request", "http.client", "ssl", "email")

KS0 = "keystone monitor depth 0"
KS10 = "keystone monitor depth 10"
KS_CURL = "curl GET keystone /v3"
NOVA0 = "nova-api monitor depth 0"
NOVA10 = "nova-api monitor depth 10"
NOVA_CURL = "curl GET nova-api /"
FLOOR = "python3 -c pass"
FLOOR_BARE = "python3 -I -S -c pass"
FLOOR_AGENT = "agent python -c pass"
KS20 = "keystone monitor depth 20"
KS_TOKEN = "curl POST token (admin)"
NOVA20 = "nova-api monitor depth 20"
NOVA_TOKEN = "curl POST token (nova)"
NOVA_FLAVORS = "curl GET flavors, new token"
NOVA_FLAVORS_SAME = "curl GET flavors, one token"

# Each monitor against what it is compared with: a label and the commands whose medians are
# added up (depth 20 makes several requests; "every request" is curl of each of them).
BASELINES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    KS0: [("curl", (KS_CURL,)), (FLOOR, (FLOOR,)), (FLOOR_AGENT, (FLOOR_AGENT,))],
    KS10: [("curl", (KS_CURL,)), (FLOOR, (FLOOR,)), (FLOOR_AGENT, (FLOOR_AGENT,))],
    NOVA0: [("curl", (NOVA_CURL,)), (FLOOR, (FLOOR,)), (FLOOR_AGENT, (FLOOR_AGENT,))],
    NOVA10: [("curl", (NOVA_CURL,)), (FLOOR, (FLOOR,)), (FLOOR_AGENT, (FLOOR_AGENT,))],
    KS20: [
        ("curl token POST", (KS_TOKEN,)),
        ("curl, every request", (KS_CURL, KS_TOKEN)),
        (FLOOR_AGENT, (FLOOR_AGENT,)),
    ],
    NOVA20: [
        ("curl token POST", (NOVA_TOKEN,)),
        ("curl, every request", (NOVA_CURL, NOVA_TOKEN, NOVA_FLAVORS)),
        (FLOOR_AGENT, (FLOOR_AGENT,)),
    ],
}


@dataclass
class Service:
    """One API service of the sandbox and its installed agent."""

    name: str  # "keystone" or "nova-api"
    agent: str
    prepared: dict[str, str]  # prepare_keystone / prepare_nova_api's answer
    # What runs the agent: nothing for an installed agent (exec'd through its own #! line);
    # bench/api_monitors.py runs the checkout's agents under the interpreter line that
    # `stackha install` writes.
    interpreter: tuple[str, ...] = ()

    def argv(self, action: str) -> list[str]:
        return [*self.interpreter, self.agent, action]

    @property
    def url(self) -> str:
        return f"http://{self.prepared['address']}:{self.prepared['port']}"

    def env(self, action: str, depth: int = 0) -> dict[str, str]:
        """The agent's environment for ``action``, as pacemaker-execd would give it."""
        env = dict(base_env(), OCF_RESOURCE_INSTANCE=f"bench-{self.name}")
        for key, value in agent_parameters(self.prepared).items():
            env[f"OCF_RESKEY_{key}"] = value
        if action == "monitor":
            interval, timeout = MONITOR_META[depth]
            env.update(
                OCF_CHECK_LEVEL=str(depth),
                OCF_RESKEY_CRM_meta_interval=interval,
                OCF_RESKEY_CRM_meta_timeout=timeout,
            )
        else:
            env["OCF_RESKEY_CRM_meta_timeout"] = (
                START_TIMEOUT_MS if action == "start" else STOP_TIMEOUT_MS
            )
        return env


@dataclass
class Context:
    """What the run was made on, for the report."""

    versions: dict[str, str]
    keystone_url: str
    nova_url: str
    setup_s: dict[str, float]  # preparing and starting each service
    agent_python: list[str]  # the agents' #! line


def parse_deep_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The shared options, and from them the runs and warm-up rounds of depth 20."""
    args = parse_args(
        __doc__.split("\n", 1)[0],
        argv,
        runs_help="measured calls per command at depths 0 and 10 (default 200); depth 20 gets a "
        "tenth of it, at least 5",
    )
    args.deep_runs = max(5, args.runs // 10)
    args.deep_warmup = min(args.warmup, 1)  # a round of depth 20 costs four tokens
    return args


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_private(path: str, text: str) -> None:
    # Created 0600 from the start: the file holds a password or a token.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)


def import_report(agent: str, env: dict[str, str]) -> ImportReport:
    """Run the monitor once under -X importtime: which heavy modules it imports, at what cost."""
    argv = [*agent_interpreter(agent), "-X", "importtime", agent, "monitor"]
    what = f"{os.path.basename(agent)} monitor under -X importtime"
    result = run_once(argv, env, what, timeout=ACTION_TIMEOUT)
    return read_importtime(result.stderr, HEAVY_MODULES)


def ratios(commands: dict[str, Command]) -> dict[str, dict[str, dict[str, float]]]:
    """Median of each monitor against the sum of its baseline's medians: the ratio and the
    difference (ms), wall and CPU."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for ours, baselines in BASELINES.items():
        table[ours] = {}
        wall = statistics.median(commands[ours].wall)
        cpu = statistics.median(commands[ours].cpu)
        for label, names in baselines:
            base_wall = sum(statistics.median(commands[name].wall) for name in names)
            base_cpu = sum(statistics.median(commands[name].cpu) for name in names)
            table[ours][label] = {
                "wall": wall / base_wall,
                "cpu": cpu / max(base_cpu, 1e-9),
                "wall_over_ms": (wall - base_wall) * 1000,
                "cpu_over_ms": (cpu - base_cpu) * 1000,
            }
    return table


def package_versions(
    packages: Sequence[str] = ("keystone", "nova-api", "uwsgi-core", "curl"),
) -> dict[str, str]:
    """{package: its installed version, or "unknown"}."""
    versions = dict.fromkeys(packages, "unknown")
    try:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Package} ${Version}\n", *packages],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return versions
    for line in result.stdout.splitlines():
        name, _, version = line.partition(" ")
        if name in versions and version:
            versions[name] = version
    return versions


def render(
    shallow: list[Command],
    deep: list[Command],
    table: dict[str, dict[str, dict[str, float]]],
    imports: dict[str, ImportReport],
    context: Context,
    args: argparse.Namespace,
) -> str:
    by_name = {command.name: command for command in shallow + deep}
    width = max(len(name) for name in by_name)
    versions = context.versions
    setup = context.setup_s
    lines = [
        "OpenStack API monitor benchmark: "
        f"{args.runs} calls per command at depths 0 and 10, {args.deep_runs} at depth 20, "
        f"interleaved, {args.warmup} warm-up rounds",
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"keystone {versions['keystone']}, nova-api {versions['nova-api']}, "
        f"uwsgi {versions['uwsgi-core']}, curl {versions['curl']}",
        f"keystone at {context.keystone_url}, nova-api at {context.nova_url}: SQLite, "
        "2 uwsgi workers each, started by the agents' start",
        "setup (s): " + ", ".join(f"{what} {seconds:.1f}" for what, seconds in setup.items()),
        f"agent python: {' '.join(context.agent_python)} (the agents' #! line)",
        "",
        *render_table(shallow, width),
        "",
        *render_table(deep, width),
    ]
    label_width = max(len(label) for rows in BASELINES.values() for label, _ in rows)
    lines += [
        "",
        "ratios of medians (monitor / baseline; +ms: monitor minus baseline):",
        "",
        f"{'':<{width}}  {'baseline':<{label_width}}  {'wall':>6}  {'cpu':>6}  "
        f"{'wall +ms':>8}  {'cpu +ms':>8}",
    ]
    for ours, rows in table.items():
        for index, (label, row) in enumerate(rows.items()):
            lines.append(
                f"{ours if index == 0 else '':<{width}}  {label:<{label_width}}  "
                f"{row['wall']:5.2f}x  {row['cpu']:5.2f}x  "
                f"{row['wall_over_ms']:8.2f}  {row['cpu_over_ms']:8.2f}"
            )
    heavy_names = {name: ", ".join(report.heavy) or "none" for name, report in imports.items()}
    heavy_width = max(len("heavy modules"), *(len(text) for text in heavy_names.values()))
    floor = statistics.median(by_name[FLOOR].wall) * 1000
    bare = statistics.median(by_name[FLOOR_BARE].wall) * 1000
    agent = statistics.median(by_name[FLOOR_AGENT].wall) * 1000
    lines += [
        "",
        f"Python start-up (wall medians): {FLOOR} {floor:.1f} ms, of which site (the "
        f"system site-packages and their .pth files) {floor - bare:.1f} ms ({FLOOR_BARE} "
        f"{bare:.1f} ms); the agents' python -I (its own site-packages only) {agent:.1f} ms",
        "",
        f"imports of each monitor (one run, -X importtime; heavy: {', '.join(HEAVY_MODULES)}):",
        f"{'monitor':<{width}}  {'heavy modules':<{heavy_width}}  {'stackha ms':>10}  "
        f"{'all ms':>7}",
    ]
    for name, report in imports.items():
        lines.append(
            f"{name:<{width}}  {heavy_names[name]:<{heavy_width}}  "
            f"{report.stackha_ms:10.1f}  {report.total_ms:7.1f}"
        )
    lines.append(
        "(depths 0 and 10 must import none of them; depth 20 posts its token through urllib)"
    )
    return "\n".join(lines)


def to_json(
    shallow: list[Command],
    deep: list[Command],
    table: dict[str, dict[str, dict[str, float]]],
    imports: dict[str, ImportReport],
    context: Context,
    args: argparse.Namespace,
) -> dict[str, object]:
    return {
        "runs": args.runs,
        "deep_runs": args.deep_runs,
        "deep_warmup": args.deep_warmup,
        "warmup": args.warmup,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **asdict(context),
        "unit": "ms",
        "commands": {
            command.name: {
                "argv": command.argv,
                "check_level": command.env.get("OCF_CHECK_LEVEL"),
                "runs": len(command.wall),
                **samples_json(command),
            }
            for command in shallow + deep
        },
        "baselines": {
            ours: {label: list(names) for label, names in rows} for ours, rows in BASELINES.items()
        },
        "ratios_of_medians": table,
        "imports": {
            name: {
                "heavy": report.heavy,
                "stackha_cumulative_ms": report.stackha_ms,
                "total_cumulative_ms": report.total_ms,
            }
            for name, report in imports.items()
        },
    }


def start_service(service: Service) -> float:
    """The agent's start, then the wait until every uwsgi worker has loaded the application
    (start returns when one answers; timing a half-loaded service would be noise); seconds."""
    started = time.monotonic()
    log_file = service.prepared["log_file"]
    offset = os.path.getsize(log_file) if os.path.exists(log_file) else 0
    run_once(
        service.argv("start"),
        service.env("start"),
        f"ocf:stackha:{service.name} start",
        timeout=ACTION_TIMEOUT,
    )
    try:
        wait_until_all_workers_loaded(service.prepared, offset)
    except RuntimeError as err:
        raise BenchError(f"{service.name}: {err}") from None
    return time.monotonic() - started


def stop_service(service: Service) -> None:
    """The agent's stop; then, as a safety net, whatever still runs from its uwsgi ini, by pid."""
    try:
        run_once(
            service.argv("stop"),
            service.env("stop"),
            f"ocf:stackha:{service.name} stop",
            timeout=ACTION_TIMEOUT,
        )
    except BenchError as err:
        print(f"warning: {err}", file=sys.stderr)
    leftovers = stop_leftovers(service.prepared)
    if leftovers:
        print(f"warning: stopped {service.name} leftovers {leftovers}", file=sys.stderr)


def commands_for(
    keystone: Service, nova: Service, secrets: str, args: argparse.Namespace
) -> tuple[list[Command], list[Command]]:
    """The commands at depths 0 and 10 with their floors, and those of depth 20 with theirs.
    ``secrets`` is a private directory for the token bodies and headers."""
    env = base_env()
    admin = read_openstack_credentials(keystone.prepared["credentials"])
    service_user = read_openstack_credentials(nova.prepared["credentials"])
    admin_body = os.path.join(secrets, "admin-token.json")
    nova_body = os.path.join(secrets, "nova-token.json")
    nova_header = os.path.join(secrets, "nova-token.header")
    write_private(admin_body, json.dumps(token_request_body(admin)))
    write_private(nova_body, json.dumps(token_request_body(service_user)))
    # nova's keystonemiddleware keeps each token it validated (in each worker's memory, with no
    # memcached): a token sent again costs nova no request to keystone. The monitor's token is
    # new every call, so the floor's is too: one issued beforehand for each call (warm-up
    # included); the one-token row shows what that validation costs.
    write_private(nova_header, f"X-Auth-Token: {issue_token(service_user, 30)}\n")
    count = args.deep_runs + args.deep_warmup
    log(f"issuing {count} nova tokens for curl")
    flavors = f"{nova.url}/v2.1/flavors"
    fresh = []
    for index in range(count):
        header = os.path.join(secrets, f"nova-token-{index}.header")
        write_private(header, f"X-Auth-Token: {issue_token(service_user, 30)}\n")
        fresh.append([*CURL_GET, "-H", f"@{header}", flavors])
    post = [*CURL_GET, "-H", "Content-Type: application/json", "--data-binary"]
    shallow = [
        Command(KS0, [keystone.agent, "monitor"], keystone.env("monitor", 0)),
        Command(KS10, [keystone.agent, "monitor"], keystone.env("monitor", 10)),
        Command(KS_CURL, [*CURL_GET, f"{keystone.url}/v3"], env),
        Command(NOVA0, [nova.agent, "monitor"], nova.env("monitor", 0)),
        Command(NOVA10, [nova.agent, "monitor"], nova.env("monitor", 10)),
        Command(NOVA_CURL, [*CURL_GET, f"{nova.url}/"], env),
        Command(FLOOR, [SYSTEM_PYTHON, "-c", "pass"], env),
        Command(FLOOR_BARE, [SYSTEM_PYTHON, "-I", "-S", "-c", "pass"], env),
        Command(FLOOR_AGENT, [*agent_interpreter(KEYSTONE_AGENT), "-c", "pass"], env),
    ]
    deep = [
        Command(KS20, [keystone.agent, "monitor"], keystone.env("monitor", 20)),
        Command(KS_TOKEN, [*post, f"@{admin_body}", f"{keystone.url}/v3/auth/tokens"], env),
        Command(NOVA20, [nova.agent, "monitor"], nova.env("monitor", 20)),
        Command(NOVA_TOKEN, [*post, f"@{nova_body}", token_url(service_user.auth_url)], env),
        Command(NOVA_FLAVORS, fresh[0], env, series=fresh),
        Command(NOVA_FLAVORS_SAME, [*CURL_GET, "-H", f"@{nova_header}", flavors], env),
    ]
    return shallow, deep


def check_deep_monitor(nova: Service) -> None:
    """nova-api's depth 20 passes without its authenticated request when keystone gives no
    token (it only logs a warning): that would time a cheaper path than the one named."""
    result = run_once(
        [nova.agent, "monitor"], nova.env("monitor", 20), NOVA20, timeout=ACTION_TIMEOUT
    )
    if "depth-20 check skipped" in result.stderr:
        raise BenchError(f"{NOVA20} skipped its authenticated request:\n{result.stderr.strip()}")


def prepared(prepare: Callable[..., dict[str, str]], *args: object) -> dict[str, str]:
    """The sandbox's preparation; its failures (keystone-manage, nova-manage, keystone's REST
    API) as BenchError."""
    try:
        return prepare(*args)
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as err:
        raise BenchError(f"{prepare.__name__}: {err}") from err


def run(args: argparse.Namespace) -> int:
    setup: dict[str, float] = {}
    services: list[Service] = []
    with reachable_directory("stackha-bench-openstack-") as root:
        try:
            log("preparing keystone (SQLite)")
            started = time.monotonic()
            keystone = Service(
                "keystone", KEYSTONE_AGENT, prepared(prepare_keystone, root / "keystone")
            )
            setup["prepare keystone"] = time.monotonic() - started
            services.append(keystone)
            log("starting keystone with the agent's start")
            setup["start keystone"] = start_service(keystone)

            log("preparing nova-api (SQLite, service user in keystone)")
            started = time.monotonic()
            nova = Service(
                "nova-api", NOVA_AGENT, prepared(prepare_nova_api, root / "nova", keystone.prepared)
            )
            setup["prepare nova-api"] = time.monotonic() - started
            services.append(nova)
            log("starting nova-api with the agent's start")
            setup["start nova-api"] = start_service(nova)

            # 0700, removed with its files at the end: they hold passwords and a token.
            with tempfile.TemporaryDirectory(prefix="stackha-bench-secrets-") as secrets:
                shallow, deep = commands_for(keystone, nova, secrets, args)
                check_deep_monitor(nova)
                log(f"measuring depths 0 and 10: {len(shallow)} commands x {args.runs}")
                interleaved(shallow, args.runs, args.warmup, timeout=ACTION_TIMEOUT)
                log(f"measuring depth 20: {len(deep)} commands x {args.deep_runs}")
                interleaved(deep, args.deep_runs, args.deep_warmup, timeout=ACTION_TIMEOUT)
            log("imports of each monitor (-X importtime)")
            imports = {
                f"{service.name} monitor depth {depth}": import_report(
                    service.agent, service.env("monitor", depth)
                )
                for service in (keystone, nova)
                for depth in (0, 10, 20)
            }
        finally:
            for service in reversed(services):
                log(f"stopping {service.name} with the agent's stop")
                stop_service(service)

    context = Context(
        versions=package_versions(),
        keystone_url=keystone.url,
        nova_url=nova.url,
        setup_s=setup,
        agent_python=agent_interpreter(KEYSTONE_AGENT),
    )
    table = ratios({command.name: command for command in shallow + deep})
    print(render(shallow, deep, table, imports, context, args))
    if args.json:
        write_json(args.json, to_json(shallow, deep, table, imports, context, args))
    return 0


def terminate(signum: int, frame: object) -> None:
    # Once: a second SIGTERM must not cut the agents' stop short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: the services stop


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_deep_args(argv)
    try:
        if os.geteuid() != 0:
            raise BenchError(
                "run as root: the agents are installed and start the services as their users"
            )
        for path in (SYSTEM_PYTHON, CURL, "/usr/bin/uwsgi"):
            if not os.access(path, os.X_OK):
                raise BenchError(f"{path} not found (make deps installs curl, uwsgi, keystone)")
        signal.signal(signal.SIGTERM, terminate)
        # the agents as operators install them: the Debian package (installed if absent)
        with stackha_package(lambda m: print(m, file=sys.stderr)):
            return run(args)
    except BenchError as err:
        print(f"benchmark aborted: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("benchmark interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
