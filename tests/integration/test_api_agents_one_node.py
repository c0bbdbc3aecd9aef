"""The OCF API agents against the real Debian services on one node, outside Pacemaker: keystone
on a one-member Galera with memcached, nova-api on Galera with RabbitMQ as its transport, and
placement-api, glance-api, neutron-server and cinder-api each configured as the lab configures
it from its record (its databases on the same Galera, RabbitMQ for neutron and cinder, its user
in the same keystone); all under uwsgi as Debian runs them, keystone and nova-api also as their
own servers. Start, monitor at every depth, stop, probe, a killed master, and bad input: a config
that does not parse or does not exist, a port already taken, what the service's package installs
missing, credentials that are wrong, missing or unreadable. No credential may appear on a command
line or in the agents' output.

Everything is prepared once for the module (the database syncs are most of its run time) and
run from a directory the service users can reach; what the tests start they stop, by pid.
``pytest -s`` prints how long each start and stop through the agent took.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import pytest
from agent_runs import BASE_ENV, command_lines_watched_for, exit_reason, free_port, run_agent
from lab_helpers import wait_for
from mariadb_sandbox import running_galera
from openstack_sandbox import (
    FROM_RECORD,
    agent_parameters,
    mariadb_database,
    memcached,
    prepare_api_service,
    prepare_keystone,
    prepare_nova_api,
    rabbitmq_transport_url,
    reachable_directory,
    stop_leftovers,
    wait_until_all_workers_loaded,
)
from rabbitmq_sandbox import one_node_rabbitmq
from stackha import http_client
from stackha.process import ProcTable, is_alive, read_pidfile
from stackha.services.api_catalog import service_named
from stackha.services.openstack_api import (
    port_problem,
    read_openstack_credentials,
    read_uwsgi_ini,
    version_document_ok,
)

# The agents of the source tree, run as the executables they are with the library on
# PYTHONPATH: the installed copies under /usr/lib/ocf are shared with whatever else runs on this
# machine (a lab, another test session) and come and go with its `installed` fixture.
ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "agents"
AGENT_ENV = {**BASE_ENV, "PYTHONPATH": str(ROOT / "lib")}
# keystone and nova-api, then what the lab configures from the service's record alone
# (openstack_sandbox.prepare_api_service): placement-api, glance-api, neutron-server, cinder-api
SERVICES = ("keystone", "nova-api", *FROM_RECORD)
# The bad credentials and the own server are tried on keystone and nova-api only: that code is
# every API agent's (stackha.agents.api_service), and each service there would cost the tier 10-30 s
# (the own servers start their application again).
FIRST_TWO = SERVICES[:2]
PROBE = {"OCF_RESKEY_CRM_meta_interval": "0"}
MONITOR = {"OCF_RESKEY_CRM_meta_interval": "10000"}
# Generous: another test may share the 2 CPUs, and a uwsgi worker loads its application in 3-5 s
# of CPU.
TIMEOUT_MS = "120000"
PROCESSES = ProcTable()


def depth(level: int) -> dict[str, str]:
    return {**MONITOR, "OCF_CHECK_LEVEL": str(level)}


@dataclass(frozen=True)
class AgentRun:
    """One agent call: its exit code, its output, and what it wrote to its log file (HA_LOGFILE,
    where its info and debug lines go)."""

    returncode: int
    stdout: str
    stderr: str
    log: str


class ApiUnderTest:
    """One prepared service, its agent, and what must never show in the agent's output."""

    def __init__(self, agent: Path, prepared: dict[str, str], secrets: list[str], log: Path):
        self.name = agent.name
        self.agent = agent
        self.prepared = prepared
        self.parameters = agent_parameters(prepared)
        self.secrets = [secret for secret in secrets if secret]
        self.log = log
        self.env = {
            **AGENT_ENV,
            "OCF_RESOURCE_INSTANCE": f"integration-{self.name}",
            "OCF_RESKEY_CRM_meta_timeout": TIMEOUT_MS,
            # the agent's log in a file of its own, with the debug lines (the runner's)
            "HA_LOGFILE": str(log),
            "HA_debug": "1",
            **{f"OCF_RESKEY_{key}": value for key, value in self.parameters.items()},
        }

    @property
    def port(self) -> int:
        return int(self.parameters["port"])

    @property
    def pidfile(self) -> Path:
        return Path(self.parameters["pidfile"])

    @property
    def directory(self) -> Path:
        return Path(self.parameters["config"]).parent

    @property
    def workers(self) -> int:
        """The uwsgi workers its ini file asks for (trimmed for two cores: see the sandbox)."""
        return read_uwsgi_ini(self.parameters["uwsgi_ini"], ":1").processes

    def call(self, action: str, **extra: str) -> AgentRun:
        """The agent run once as pacemaker-execd runs it; no secret in what it wrote."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        result = run_agent(self.agent, action, {**self.env, **extra}, timeout=240)
        written = ""
        if self.log.exists():
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                handle.seek(offset)
                written = handle.read()
        for secret in self.secrets:
            assert secret not in result.stderr, f"{self.name} {action}: a secret on stderr"
            assert secret not in result.stdout, f"{self.name} {action}: a secret on stdout"
            assert secret not in written, f"{self.name} {action}: a secret in {self.log}"
        assert "Traceback" not in result.stderr, result.stderr
        return AgentRun(result.returncode, result.stdout, result.stderr, written)

    def timed(self, action: str, **extra: str) -> tuple[AgentRun, float]:
        started = time.monotonic()
        result = self.call(action, **extra)
        return result, time.monotonic() - started

    def ensure_started(self) -> None:
        result = self.call("start")
        assert result.returncode == 0, result.stderr

    def master(self) -> Optional[int]:
        return read_pidfile(str(self.pidfile))

    def processes(self) -> list[int]:
        """Live processes whose command line names this service's uwsgi ini (unique to it)."""
        return processes_naming(self.parameters["uwsgi_ini"])

    def answers_version(self, port: Optional[int] = None) -> Optional[str]:
        """None when the version document answers on ``port`` (the service's), else why not."""
        api = service_named(self.name)
        url = f"http://127.0.0.1:{port or self.port}{api.version_path}"
        answer = http_client.get(url, 10, {"Accept": "application/json"})
        return version_document_ok(answer.status, answer.body, api)

    def all_workers_loaded(self, log_offset: int) -> float:
        return wait_until_all_workers_loaded(self.prepared, log_offset)

    def uwsgi_log_size(self) -> int:
        path = Path(self.parameters["log_file"])
        return path.stat().st_size if path.exists() else 0


def processes_naming(text: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if text.encode() not in (entry / "cmdline").read_bytes():
                continue
        except OSError:
            continue
        if is_alive(PROCESSES, int(entry.name)):
            found.append(int(entry.name))
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(PROCESSES.children(current))
    return tree


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """The TCP addresses and ports the processes ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                # the kernel prints each 32-bit word of the address in host (little-endian) order
                raw = bytes.fromhex(address)
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add((socket.inet_ntop(family, packed), int(port, 16)))
    return found


def password_in(url: str) -> str:
    return urlsplit(url).password or ""


def is_free(port: int) -> bool:
    return port_problem("127.0.0.1", port) is None


# -- what the module prepares once ---------------------------------------------------------------


@pytest.fixture(scope="module")
def directory():
    with reachable_directory("stackha-api-agents-") as root:
        yield root


@pytest.fixture(scope="module")
def galera(directory):
    """A one-member Galera (MariaDB) bootstrapped by hand, as root, stopped by pid."""
    started = time.monotonic()
    with running_galera(directory / "galera") as params:
        print(f"\n  mariadbd (Galera, one member) ready in {time.monotonic() - started:.1f} s")
        yield params


@pytest.fixture(scope="module")
def cache():
    with memcached() as servers:
        yield servers


@pytest.fixture(scope="module")
def broker(directory):
    """A one-node RabbitMQ, started and stopped with its own agent."""
    with one_node_rabbitmq() as (params, _):
        agent = AGENTS / "rabbitmq"
        env = {
            **AGENT_ENV,
            "OCF_RESOURCE_INSTANCE": "integration-api-rabbitmq",
            "HA_RSCTMP": str(directory / "rsctmp"),
            **{f"OCF_RESKEY_{key}": value for key, value in params.items()},
        }
        started = time.monotonic()
        result = run_agent(agent, "start", env, timeout=240)
        try:
            assert result.returncode == 0, result.stderr
            print(f"\n  RabbitMQ (its agent) started in {time.monotonic() - started:.1f} s")
            yield params
        finally:
            run_agent(agent, "stop", env, timeout=120)


@pytest.fixture(scope="module")
def keystone(directory, galera, cache):
    url = mariadb_database(galera, "keystone")
    started = time.monotonic()
    prepared = prepare_keystone(directory / "keystone", database_url=url, memcache_servers=cache)
    print(f"\n  keystone prepared on Galera in {time.monotonic() - started:.1f} s")
    api = ApiUnderTest(
        AGENTS / "keystone",
        prepared,
        [prepared["_admin_password"], password_in(url)],
        directory / "agent-keystone.log",
    )
    try:
        yield api
    finally:
        api.call("stop")
        stop_leftovers(prepared)


@pytest.fixture(scope="module")
def nova_api(directory, galera, broker, keystone):
    keystone.ensure_started()  # nova's service user is made through keystone's API
    api_url = mariadb_database(galera, "nova_api")
    main_url = mariadb_database(galera, "nova")
    started = time.monotonic()
    prepared = prepare_nova_api(
        directory / "nova",
        keystone.prepared,
        database_url_api=api_url,
        database_url=main_url,
        transport_url=rabbitmq_transport_url(broker, "guest", "guest", "/"),
    )
    print(f"\n  nova-api prepared on Galera in {time.monotonic() - started:.1f} s")
    nova_password = read_openstack_credentials(prepared["credentials"]).password
    api = ApiUnderTest(
        AGENTS / "nova-api",
        prepared,
        [nova_password, password_in(api_url), password_in(main_url), *keystone.secrets],
        directory / "agent-nova-api.log",
    )
    try:
        yield api
    finally:
        api.call("stop")
        stop_leftovers(prepared)


@pytest.fixture(scope="module")
def from_record(directory, galera, broker, keystone):
    """placement-api, glance-api, neutron-server and cinder-api prepared as the lab prepares
    them from their records, on the module's Galera, RabbitMQ and keystone, two at a time (the
    database migrations are most of it; MariaDB waits on the disk meanwhile)."""
    keystone.ensure_started()  # each service's user is made through keystone's API
    transport = rabbitmq_transport_url(broker, "guest", "guest", "/")

    def prepare(name: str) -> ApiUnderTest:
        record = service_named(name)
        urls = {database: mariadb_database(galera, database) for database in record.lab.databases}
        started = time.monotonic()
        prepared = prepare_api_service(
            directory / name,
            name,
            keystone.prepared,
            urls,
            transport if record.uses_messaging else "",
        )
        print(f"\n  {name} prepared on Galera in {time.monotonic() - started:.1f} s")
        password = read_openstack_credentials(prepared["credentials"]).password
        return ApiUnderTest(
            AGENTS / name,
            prepared,
            [password, *(password_in(url) for url in urls.values()), *keystone.secrets],
            directory / f"agent-{name}.log",
        )

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="prepare") as pool:
        apis = dict(zip(FROM_RECORD, pool.map(prepare, FROM_RECORD)))
    print(f"  {', '.join(FROM_RECORD)} prepared in {time.monotonic() - started:.1f} s")
    try:
        yield apis
    finally:
        for api in apis.values():
            api.call("stop")
            stop_leftovers(api.prepared)


@pytest.fixture
def api(request, keystone):
    """The service a test is parametrized with; for the others than keystone, keystone running
    too."""
    if request.param == "keystone":
        return keystone
    if request.param == "nova-api":
        service = request.getfixturevalue("nova_api")
    else:
        service = request.getfixturevalue("from_record")[request.param]
    keystone.ensure_started()
    return service


# -- start, monitor, stop, probe ------------------------------------------------------------------


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_probe_start_monitor_stop_and_probe_again(api):
    """The stopped service probes 7; start serves the version document, a second start spawns
    nothing; every monitor depth is 0; stop leaves no process, pid file or bound port; a second
    stop is 0 and the probe 7 again; no password is on any command line meanwhile."""
    assert api.call("monitor", **PROBE).returncode == 7
    assert api.processes() == []
    offset = api.uwsgi_log_size()
    with command_lines_watched_for(*api.secrets) as exposed:
        result, seconds = api.timed("start")
        assert result.returncode == 0, result.stderr
        print(f"\n  {api.name} (uwsgi) start: {seconds:.1f} s (with a /proc watcher running)")
        assert api.answers_version() is None
        master = api.master()
        running = sorted(api.processes())
        assert master in running and len(running) == 1 + api.workers  # the master, its workers
        again = api.call("start")
        assert again.returncode == 0, again.stderr
        assert "is already running" in again.log
        assert api.master() == master
        assert sorted(api.processes()) == running
        for level in (0, 10, 20):
            result, seconds = api.timed("monitor", **depth(level))
            assert result.returncode == 0, result.stderr
            print(f"  {api.name} monitor depth {level}: {seconds:.2f} s")
        assert api.call("monitor", **PROBE).returncode == 0
        # A stop while a worker still loads the application waits for it (see the agent); the
        # figure wanted is that of a service that has settled.
        print(f"  {api.name}: every worker loaded {api.all_workers_loaded(offset):.1f} s later")
        result, seconds = api.timed("stop")
        assert result.returncode == 0, result.stderr
        print(f"  {api.name} (uwsgi) stop: {seconds:.1f} s")
    assert not exposed, f"a password was on the command line of pids {exposed}"
    assert api.processes() == []
    assert is_free(api.port)
    assert not api.pidfile.exists()
    assert api.call("stop").returncode == 0
    assert api.call("monitor", **PROBE).returncode == 7
    assert api.call("monitor", **depth(10)).returncode == 7


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_a_killed_master_is_not_running_and_starts_again(api):
    """kill -9 of the uwsgi master: its workers go (no-orphans), monitor says 7, and Pacemaker's
    recovery, stop then start, brings the service back on the same port."""
    api.ensure_started()
    master = api.master()
    assert master is not None
    killed = time.monotonic()
    os.kill(master, signal.SIGKILL)  # the uwsgi master this module started
    wait_for(lambda: not api.processes(), f"{api.name}'s master and workers gone", 30, 0.05)
    print(f"\n  {api.name}: workers gone {time.monotonic() - killed:.2f} s after kill -9")
    result = api.call("monitor", **depth(0))
    assert result.returncode == 7, result.stderr
    assert api.call("monitor", **PROBE).returncode == 7
    result = api.call("stop")
    assert result.returncode == 0, result.stderr
    assert not api.pidfile.exists()  # the stale one, removed
    result, seconds = api.timed("start")
    assert result.returncode == 0, result.stderr
    print(f"  {api.name} (uwsgi) start after kill -9: {seconds:.1f} s")
    assert api.master() != master
    assert api.answers_version() is None


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_a_config_that_does_not_parse_is_refused_naming_the_file_and_line(api):
    """A copy of the config with a line that is not 'name = value' (under its own name:
    placement and glance read no other): start and validate-all exit 5 naming the file and the
    line, and nothing is spawned."""
    config = Path(api.parameters["config"])
    broken = api.directory / "broken" / config.name
    broken.parent.mkdir(exist_ok=True)
    shutil.copy2(config, broken)
    with open(broken, "a", encoding="utf-8") as handle:
        handle.write("this line is not an option\n")
    line = len(broken.read_text(encoding="utf-8").splitlines())
    pidfile = api.directory / "run" / "broken.pid"
    before = sorted(api.processes())
    for action in ("validate-all", "start"):
        result = api.call(action, OCF_RESKEY_config=str(broken), OCF_RESKEY_pidfile=str(pidfile))
        assert result.returncode == 5, result.stderr
        assert exit_reason(result) == (
            f"config {broken} does not parse: line {line} is not 'name = value'"
        )
    assert sorted(api.processes()) == before
    assert not pidfile.exists()


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_a_config_file_that_does_not_exist_is_refused(api):
    """start with a config file that is not there exits 5 naming it."""
    missing = api.directory / "no-such" / Path(api.parameters["config"]).name
    pidfile = api.directory / "run" / "missing.pid"
    result = api.call("start", OCF_RESKEY_config=str(missing), OCF_RESKEY_pidfile=str(pidfile))
    assert result.returncode == 5, result.stderr
    assert exit_reason(result) == f"config file {missing} does not exist"
    assert not pidfile.exists()


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_a_port_already_taken_is_refused_before_anything_starts(api, keystone):
    """start on a port another process listens on exits 5 saying so: keystone's on a socket
    the test holds, nova-api's on the port of the running keystone."""
    pidfile = api.directory / "run" / "taken.pid"
    before = sorted(api.processes())
    with socket.socket() as holder:
        if api is keystone:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
        else:
            port = keystone.port
            assert not is_free(port)
        result = api.call("start", OCF_RESKEY_port=str(port), OCF_RESKEY_pidfile=str(pidfile))
    assert result.returncode == 5, result.stderr
    assert exit_reason(result) == (
        f"{api.name} cannot start: port {port} on 127.0.0.1 is already in use by another process"
    )
    assert sorted(api.processes()) == before
    assert not pidfile.exists()


@pytest.mark.parametrize("api", SERVICES, indirect=True)
def test_what_the_services_package_installs_missing_is_refused_naming_it(api):
    """A node without the service's Debian package (or without uwsgi's): the parameters name
    where the package puts its files, under a root where nothing is. Missing uwsgi, the uwsgi
    ini file, the service's own server (mode executable), or a file the service reads beside its
    config file: validate-all and start exit 5 naming it, and nothing is spawned."""
    record = service_named(api.name)
    nowhere = api.directory / "not-installed"
    pidfile = api.directory / "run" / "not-installed.pid"

    def absent(path: str) -> str:
        return str(nowhere / path.lstrip("/"))

    cases = [
        (
            {"OCF_RESKEY_uwsgi_binary": absent("/usr/bin/uwsgi")},
            f"{absent('/usr/bin/uwsgi')} is not installed or not executable",
        ),
        (
            {"OCF_RESKEY_uwsgi_ini": absent(record.uwsgi_ini)},
            f"uwsgi ini file {absent(record.uwsgi_ini)} does not exist",
        ),
        (
            {"OCF_RESKEY_mode": "executable", "OCF_RESKEY_executable": absent(record.executable)},
            f"{absent(record.executable)} is not installed or not executable",
        ),
    ]
    if record.companions:
        # the config file alone, without what the package puts beside it
        config = Path(api.parameters["config"])
        alone = api.directory / "alone" / config.name
        alone.parent.mkdir(exist_ok=True)
        shutil.copy2(config, alone)
        cases.append(
            (
                {"OCF_RESKEY_config": str(alone)},
                f"{alone.parent / record.companions[0]} does not exist ({api.name} reads it)",
            )
        )
    before = sorted(api.processes())
    for extra, reason in cases:
        for action in ("validate-all", "start"):
            result = api.call(action, OCF_RESKEY_pidfile=str(pidfile), **extra)
            assert (result.returncode, exit_reason(result)) == (5, reason), result.stderr
    assert sorted(api.processes()) == before
    assert not pidfile.exists()


def wrong_password(api: ApiUnderTest, path: Path) -> str:
    wrong = os.urandom(9).hex()
    text = Path(api.parameters["credentials"]).read_text(encoding="utf-8")
    password = read_openstack_credentials(api.parameters["credentials"]).password
    path.write_text(text.replace(f"password={password}", f"password={wrong}"))
    path.chmod(0o600)
    return wrong


@pytest.mark.parametrize("api", FIRST_TWO, indirect=True)
def test_wrong_credentials_fail_depth_20_with_5_naming_the_file(api):
    """A credentials file with a wrong password: the running service's depth-20 monitor exits 5
    naming the file and keystone's refusal, without the password."""
    api.ensure_started()
    copy = api.directory / "wrong.credentials"
    wrong = wrong_password(api, copy)
    user = read_openstack_credentials(str(copy)).username
    project = read_openstack_credentials(str(copy)).project_name
    result = api.call("monitor", OCF_RESKEY_credentials=str(copy), **depth(20))
    assert result.returncode == 5, result.stderr
    assert exit_reason(result) == (
        f"credentials file {copy}: keystone refused user {user} (domain Default, project {project})"
    )
    assert wrong not in result.stderr
    assert api.call("monitor", **depth(20)).returncode == 0  # its own file still works


def missing_file(path: Path) -> str:
    return f"credentials file {path}: No such file or directory"


def a_directory(path: Path) -> str:
    path.mkdir()
    return f"credentials file {path}: Is a directory"


def not_utf8(path: Path) -> str:
    path.write_bytes(b"username=admin\npassword=\xff\xfe\n")
    path.chmod(0o600)
    return f"credentials file {path} is not UTF-8 text"


# Mode 000 would not do for "unreadable": the agent runs as root, which reads any file whatever
# its mode. A directory, and bytes that are not UTF-8, are what root cannot read as the file.
@pytest.mark.parametrize("unreadable", [missing_file, a_directory, not_utf8])
@pytest.mark.parametrize("api", FIRST_TWO, indirect=True)
def test_a_missing_or_unreadable_credentials_file_is_5_naming_it(api, unreadable):
    """depth 20 and validate-all with a credentials file that is missing, a directory, or not
    text exit 5 with a reason naming the file."""
    api.ensure_started()
    path = api.directory / f"{unreadable.__name__}.credentials"
    reason = unreadable(path)
    for action, extra in (("monitor", depth(20)), ("validate-all", {})):
        result = api.call(action, OCF_RESKEY_credentials=str(path), **extra)
        assert result.returncode == 5, (action, result.stderr)
        assert exit_reason(result) == reason
    assert api.call("monitor", **depth(0)).returncode == 0


# -- nova-api when keystone is gone -----------------------------------------------------------


def test_nova_depth_20_without_keystone_is_judged_on_its_version_document(keystone, nova_api):
    """With keystone stopped, nova-api's depth-20 monitor gives 0 and says in its log why the
    deeper check was skipped; with keystone back the full check passes again."""
    keystone.ensure_started()
    nova_api.ensure_started()
    assert keystone.call("stop").returncode == 0
    try:
        result = nova_api.call("monitor", **depth(20))
        assert result.returncode == 0, result.stderr
        assert "WARNING: depth-20 check skipped, no token from keystone" in result.stderr
        assert "judged on its version document" in result.stderr
    finally:
        keystone.ensure_started()
    result = nova_api.call("monitor", **depth(20))
    assert result.returncode == 0, result.stderr
    assert "depth-20 check skipped" not in result.stderr


def test_cinder_unable_to_validate_a_token_with_keystone_is_judged_on_its_version_document(
    keystone, from_record
):
    """The lab's failure: keystone issued the monitor's token, but cinder-api's
    keystonemiddleware could not have it validated (here its auth_url is a port nothing listens
    on; in the lab, keystone behind the VIP was mid-restart) and cinder answered 503. Not
    cinder's fault: its depth-20 monitor gives 0 with a warning naming what cinder said, and
    with its keystone back the full check passes again."""
    cinder = from_record["cinder-api"]
    config = Path(cinder.parameters["config"])
    original = config.read_text(encoding="utf-8")
    head, section, rest = original.partition("[keystone_authtoken]\n")
    broken_rest, count = re.subn(
        r"(?m)^auth_url = .*$", f"auth_url = http://127.0.0.1:{free_port()}/", rest, count=1
    )
    assert section and count == 1, original
    keystone.ensure_started()
    assert cinder.call("stop").returncode == 0
    config.write_text(head + section + broken_rest, encoding="utf-8")  # same file, same mode
    try:
        cinder.ensure_started()
        result = cinder.call("monitor", **depth(20))
        assert result.returncode == 0, result.stderr
        assert (
            "WARNING: depth-20 check skipped, cinder-api could not validate the token: GET "
            "/v3/{project_id}/volumes?limit=1 with a token answered 503 Service Unavailable: "
        ) in result.stderr
        assert "The Keystone service is temporarily unavailable." in result.stderr
    finally:
        cinder.call("stop")
        config.write_text(original, encoding="utf-8")
    cinder.ensure_started()
    result = cinder.call("monitor", **depth(20))
    assert result.returncode == 0, result.stderr
    assert "depth-20 check skipped" not in result.stderr


# -- slow is not dead ------------------------------------------------------------------------------


def stopped(api: ApiUnderTest) -> list[int]:
    """SIGSTOP to every process of the service (uwsgi's master and workers): the kernel still
    accepts connections on its socket, nothing answers them until SIGCONT."""
    pids = api.processes()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def resumed(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def test_nova_api_frozen_6_5_s_is_slow_not_failed_and_frozen_for_good_fails_in_time(
    keystone, nova_api
):
    """Issue 14: under load nova-api took ~6.5 s to answer its depth-20 monitor, which gave up
    at 5 s in a 60 s operation, and Pacemaker restarted it. A real nova-api held still for
    6.5 s now passes its 60 s depth-20 monitor, which says how long it waited; one that never
    answers again fails its 10 s depth-10 monitor after its 8 s budget, naming the wait."""
    keystone.ensure_started()
    nova_api.ensure_started()
    pids = stopped(nova_api)
    outcome: list[AgentRun] = []
    try:
        monitor = threading.Thread(
            target=lambda: outcome.append(
                nova_api.call("monitor", **depth(20), OCF_RESKEY_CRM_meta_timeout="60000")
            )
        )
        monitor.start()
        time.sleep(6.5)
        resumed(pids)
        monitor.join(60)
    finally:
        resumed(pids)
    (result,) = outcome
    assert result.returncode == 0, result.stderr
    slow = re.search(r"WARNING: GET / answered after (\d+\.\d) s, slower than 5 s", result.stderr)
    assert slow and float(slow.group(1)) > 5, result.stderr  # past the old limit
    print(f"\n  nova-api frozen 6.5 s: {slow.group(0)}")
    pids = stopped(nova_api)
    try:
        result, seconds = nova_api.timed(
            "monitor", **depth(10), OCF_RESKEY_CRM_meta_timeout="10000"
        )
    finally:
        resumed(pids)
    assert result.returncode == 1, result.stderr
    assert re.fullmatch(
        r"nova-api: GET http://\S+/: no answer within [78]\.\d s", exit_reason(result)
    ), exit_reason(result)
    assert seconds < 10
    print(f"  nova-api frozen for good: {exit_reason(result)} ({seconds:.1f} s)")


# -- the service's own server (mode executable) ---------------------------------------------------


@pytest.mark.parametrize("api", FIRST_TWO, indirect=True)
def test_the_services_own_server_starts_monitors_and_stops(api):
    """mode=executable: keystone-wsgi-public --host/--port, nova-api with a second config file
    that sets its address; it listens on that address and port only, its process name is what
    the agent checks, and stop leaves nothing behind."""
    port = free_port()
    pidfile = api.directory / "run" / "own-server.pid"
    own = {
        "OCF_RESKEY_mode": "executable",
        "OCF_RESKEY_port": str(port),
        "OCF_RESKEY_pidfile": str(pidfile),
    }
    executable = service_named(api.name).executable
    assert api.call("monitor", **own, **PROBE).returncode == 7
    try:
        result, seconds = api.timed("start", **own)
        assert result.returncode == 0, result.stderr
        print(f"\n  {api.name} ({os.path.basename(executable)}) start: {seconds:.1f} s")
        master = read_pidfile(str(pidfile))
        assert master is not None
        comm = Path(f"/proc/{master}/comm").read_text().strip()
        print(f"  {api.name} ({os.path.basename(executable)}) /proc/{master}/comm: {comm!r}")
        assert comm == os.path.basename(executable)[:15]
        assert api.answers_version(port) is None
        for level in (0, 10):
            result = api.call("monitor", **own, **depth(level))
            assert result.returncode == 0, result.stderr
        tree = process_tree(master)
        # nova-api's default enabled_apis adds the metadata API, on 0.0.0.0:8775
        assert listening_sockets(tree) == {("127.0.0.1", port)}
        result, seconds = api.timed("stop", **own)
        assert result.returncode == 0, result.stderr
        print(f"  {api.name} ({os.path.basename(executable)}) stop: {seconds:.1f} s")
        assert not [pid for pid in tree if is_alive(PROCESSES, pid)]
        assert is_free(port)
        assert not pidfile.exists()
        assert not Path(f"{pidfile}.listen.conf").exists()
        assert api.call("monitor", **own, **PROBE).returncode == 7
    finally:
        api.call("stop", **own)
