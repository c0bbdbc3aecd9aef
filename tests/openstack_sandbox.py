"""Private OpenStack API services on loopback, for the agents outside Pacemaker.

``prepare_keystone`` and ``prepare_nova_api`` lay out in one directory everything a service
needs — configuration, database (SQLite in the directory unless a URL is given), keys, logs, a
uwsgi ini trimmed from Debian's — and return the agent's parameters; ``prepare_api_service``
does the same for placement-api, glance-api, neutron-server and cinder-api from their records
alone (the lab's configuration sections and setup commands, on databases the caller gives).
They leave nothing running: the agent starts uwsgi itself, as Debian's init script does, with
the listening address on the command line (``uwsgi --ini INI --die-on-term --http-socket
127.0.0.1:PORT``; cinder's config file in ``--pyargv``), as the service's user and with the
service's config directory in the environment. ``running_service`` starts that same command by
hand (the agent's own ``stackha.services.openstack_api.uwsgi_argv`` and
``service_environment``; for a keystone that the others need, and for the self-check) and stops
it by pid.

The uwsgi workers run as the service's user: what they read or write lives in the
directory, which must be reachable by them (pytest's ``tmp_path`` is not: its parents are 0700
root); ``reachable_directory`` makes one that is. Nothing listens beyond 127.0.0.1. No password
is put on a command line: keystone-manage reads the admin's from ``OS_BOOTSTRAP_PASSWORD``,
MariaDB gets its SQL on stdin.

Self-check, which starts and stops everything by hand and prints what it measured:
``PYTHONPATH=lib .venv/bin/python tests/openstack_sandbox.py [--galera]``.
"""

from __future__ import annotations

import base64
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, TypeVar

from agent_runs import free_port, stop_child
from mariadb_sandbox import running_galera
from stackha import http_client
from stackha.lab.openstack import (
    UWSGI,
    KeystoneAdmin,
    credentials_text,
    keystone_authtoken,
    trimmed_uwsgi_ini,
)
from stackha.services.api_catalog import service_named
from stackha.services.openstack_api import (
    check_authenticated,
    issue_token,
    read_openstack_credentials,
    read_uwsgi_ini,
    service_environment,
    socket_address,
    uwsgi_argv,
    uwsgi_pyargv,
    version_document_ok,
)

LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
ADDRESS = "127.0.0.1"
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
NOVA_API_PASTE = "/etc/nova/api-paste.ini"
REGION = "RegionOne"
# Seconds; keystone-manage and nova-manage are CPU-bound Python start-ups (2-5 s each here).
MANAGE_TIMEOUT = 300
START_TIMEOUT = 120


# -- directories and files --------------------------------------------------------------------


@contextmanager
def reachable_directory(prefix: str = "stackha-openstack-") -> Iterator[Path]:
    """A fresh directory under the system's temporary directory that every user can traverse
    (0755), removed afterwards with whatever is in it. Stop what runs from it first."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        directory.chmod(0o755)
        check_reachable(directory)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def check_reachable(directory: Path) -> None:
    """Raise ValueError unless ``directory`` and all its parents are traversable by any user
    (the service users are not in root's groups)."""
    for path in (directory, *directory.parents):
        if not path.stat().st_mode & stat.S_IXOTH:
            raise ValueError(
                f"{directory} is not reachable by the service users: {path} is "
                f"{stat.filemode(path.stat().st_mode)} (use reachable_directory())"
            )


def agent_parameters(prepared: Mapping[str, str]) -> dict[str, str]:
    """What the agent takes: the prepared parameters without the test-only underscore keys."""
    return {key: value for key, value in prepared.items() if not key.startswith("_")}


def _service_directory(path: Path, account: pwd.struct_passwd, mode: int) -> Path:
    path.mkdir(mode=mode)
    os.chown(path, account.pw_uid, account.pw_gid)
    path.chmod(mode)  # mkdir's mode is filtered by the umask
    return path


def _write(path: Path, text: str, mode: int, owner: int = 0, group: int = 0) -> None:
    # Created with its final mode: a file with a password in it is never readable by others,
    # not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        os.fchown(handle.fileno(), owner, group)
        handle.write(text)


def _write_fernet_keys(directory: Path, account: pwd.struct_passwd) -> None:
    # What 'keystone-manage fernet_setup' / 'credential_setup' leave behind, without two Python
    # start-ups of keystone (2 s each here): a 0700 directory of the service user holding keys
    # named 0 (the staged key) and 1 (the primary), each a Fernet key, i.e. 32 random bytes in
    # URL-safe base64.
    _service_directory(directory, account, 0o700)
    for name in ("0", "1"):
        key = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
        _write(directory / name, key, 0o600, account.pw_uid, account.pw_gid)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path: four slashes in all


def _service_layout(directory: Path, user: str) -> tuple[pwd.struct_passwd, Path, Path, Path]:
    """``directory`` (created if missing, reachable) with the service user's state (0700),
    log and run directories in it; the user's account and the three directories."""
    account = pwd.getpwnam(user)
    directory.mkdir(mode=0o755, exist_ok=True)
    check_reachable(directory)
    return (
        account,
        _service_directory(directory / "state", account, 0o700),
        _service_directory(directory / "log", account, 0o755),
        _service_directory(directory / "run", account, 0o755),
    )


def _cache_section(memcache_servers: str) -> str:
    """oslo.cache on the memcached servers ("host:port,..."), or nothing without any."""
    if not memcache_servers:
        return ""
    return (
        "[cache]\nenabled = true\nbackend = oslo_cache.memcache_pool\n"
        f"memcache_servers = {memcache_servers}\n"
    )


def _manage_argv(program: str, config: Path, logs: Path) -> list[str]:
    """keystone-manage / nova-manage on ``config``, logging into ``logs`` (where _run_manage
    looks for the reason of a failure)."""
    return [program, "--config-file", str(config), "--log-file", str(logs / f"{program}.log")]


# keystone's uwsgi workers run 2 threads; SQLAlchemy's pool then finalises a SQLite connection
# in a thread other than its own and keystone.log fills with "ERROR sqlalchemy.pool.impl.NullPool
# ... SQLite objects created in a thread can only be used in that same thread" (93 lines for 12
# tokens here). Python's sqlite3 module is thread-safe; only its check is in the way.
SQLITE_THREADS = "?check_same_thread=false"


def _agent_files(
    service: str,
    directory: Path,
    run: Path,
    config: Path,
    port: int,
    credentials: tuple[str, str],
) -> dict[str, str]:
    """The agent's parameters for ``service`` in ``directory``, writing what they name there:
    Debian's uwsgi ini trimmed as the lab trims it (two workers, no AppArmor; Debian's are for a
    real controller), logging to log/uwsgi.log and working in state/, and the credentials file
    (name, text; 0600)."""
    log_file = directory / "log" / "uwsgi.log"
    debian_ini = Path(service_named(service).uwsgi_ini)
    processes, threads = service_named(service).lab.workers
    settings = {"logto": str(log_file), "chdir": str(directory / "state")}
    text = trimmed_uwsgi_ini(debian_ini.read_text(encoding="utf-8"), processes, threads, settings)
    uwsgi_ini = directory / debian_ini.name
    uwsgi_ini.write_text(
        f"# Debian's {debian_ini}, trimmed for a test (openstack_sandbox.py).\n{text}"
    )
    uwsgi_ini.chmod(0o644)
    name, credentials_file = credentials
    _write(directory / name, credentials_file, 0o600)
    return {
        "uwsgi_ini": str(uwsgi_ini),
        "config": str(config),
        "address": ADDRESS,
        "port": str(port),
        "pidfile": str(run / f"{service}.pid"),
        "credentials": str(directory / name),
        "log_file": str(log_file),
    }


def _run_manage(
    argv: list[str],
    account: pwd.struct_passwd,
    what: str,
    extra_env: Optional[Mapping[str, str]] = None,
    accept: tuple[int, ...] = (0,),
) -> float:
    """Run a keystone-manage / nova-manage command as the service user (as Debian's
    maintainer scripts do, so nothing it creates belongs to root); its run time in seconds.
    An exit code not in ``accept`` is a RuntimeError with the end of its stderr (and of its
    --log-file, when it has one)."""
    started = time.monotonic()
    result = subprocess.run(
        argv,
        env={**BASE_ENV, "HOME": account.pw_dir, **(extra_env or {})},
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=MANAGE_TIMEOUT,
    )
    if result.returncode not in accept:
        logged = (
            _errors_in(Path(argv[argv.index("--log-file") + 1])) if "--log-file" in argv else ""
        )
        raise RuntimeError(f"{argv[0]} {what} failed: {_tail(result.stderr)}\n{logged}")
    elapsed = time.monotonic() - started
    LOG.info("%s %s: %.1f s", argv[0], what, elapsed)
    return elapsed


def _errors_in(log: Path, lines: int = 10) -> str:
    """The last ERROR and CRITICAL lines of an oslo.log file: where keystone-manage and
    nova-manage say why they failed (their stderr has only warnings)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    found = [line for line in text.splitlines() if " ERROR " in line or " CRITICAL " in line]
    return "\n".join(found[-lines:])


def _finish(process: subprocess.Popen[str]) -> str:
    """Wait for a nova-manage we started, killing it after MANAGE_TIMEOUT; its stderr."""
    try:
        return process.communicate(timeout=MANAGE_TIMEOUT)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1] + f"\n(killed after {MANAGE_TIMEOUT} s)"


def _tail(text: str, lines: int = 15) -> str:
    # Their stderr ends with eventlet's harmless "Exception ignored ... getcurrent" at exit;
    # the error, if any, is above it.
    return "\n".join(text.strip().splitlines()[-lines:])


# -- keystone ---------------------------------------------------------------------------------


def prepare_keystone(
    directory: Path, database_url: str = "", memcache_servers: str = ""
) -> dict[str, str]:
    """A keystone in ``directory`` (created if missing), prepared but not running: its
    database synced (SQLite in the directory unless ``database_url``), Fernet and credential
    keys, the admin bootstrapped with a random password and the catalog pointing at
    http://127.0.0.1:PORT/v3 for a free PORT, a uwsgi ini, and the admin's credentials in a
    0600 file. ``memcache_servers`` ("host:port,...") turns keystone's cache on.

    Returns the keystone agent's parameters, and for the tests ``_admin_password``, ``_url``
    (http://127.0.0.1:PORT) and ``_log`` (keystone's own log; ``log_file`` is uwsgi's).
    """
    account, state, logs, run = _service_layout(directory, "keystone")
    port = free_port()
    url = f"http://{ADDRESS}:{port}"
    config = directory / "keystone.conf"
    # keystone.conf holds the database password when there is one: readable by keystone only.
    _write(
        config,
        f"""[DEFAULT]
log_dir = {logs}
log_file = keystone.log
[database]
connection = {database_url or _sqlite_url(state / "keystone.sqlite") + SQLITE_THREADS}
[token]
provider = fernet
[fernet_tokens]
key_repository = {state}/fernet-keys
[fernet_receipts]
key_repository = {state}/fernet-keys
[credential]
key_repository = {state}/credential-keys
{_cache_section(memcache_servers)}""",
        0o640,
        group=account.pw_gid,
    )
    _write_fernet_keys(state / "fernet-keys", account)
    _write_fernet_keys(state / "credential-keys", account)
    manage = _manage_argv("keystone-manage", config, logs)
    _run_manage([*manage, "db_sync"], account, "db_sync")
    admin_password = secrets.token_urlsafe(18)
    # The catalog's identity endpoint matters: keystonemiddleware in nova-api validates tokens
    # at the internal one.
    endpoints = [
        arg
        for interface in ("admin", "internal", "public")
        for arg in (f"--bootstrap-{interface}-url", f"{url}/v3")
    ]
    _run_manage(
        [*manage, "bootstrap", "--bootstrap-region-id", REGION, *endpoints],
        account,
        "bootstrap",
        {"OS_BOOTSTRAP_PASSWORD": admin_password},
    )
    admin = credentials_text(f"{url}/v3", "admin", admin_password, "admin")
    return {
        **_agent_files("keystone", directory, run, config, port, ("admin.credentials", admin)),
        "_admin_password": admin_password,
        "_url": url,
        "_log": str(logs / "keystone.log"),
    }


# -- keystone's REST API, for the service users -----------------------------------------------


def create_service_user(keystone: Mapping[str, str], name: str, password: str) -> None:
    """User ``name`` in keystone's Default domain (its password reset if it exists) with the
    role admin on project ``service`` (created if missing), with the admin's token (0.5-2.5 s
    all told, less while no sync shares the CPUs)."""
    token = issue_token(read_openstack_credentials(keystone["credentials"]), 30)
    admin = KeystoneAdmin(f"http://{keystone['address']}:{keystone['port']}", token)
    project = admin.ensure(
        "projects",
        "name=service&domain_id=default",
        {"project": {"name": "service", "domain_id": "default", "description": "services"}},
    )
    query = f"name={name}&domain_id=default"
    user = admin.find("users", query)
    if user:
        # Another sandbox made it against this keystone: the user is taken over, and the
        # earlier sandbox's password stops working.
        admin.set_password(user, password)
    else:
        body = {"user": {"name": name, "domain_id": "default", "password": password}}
        user = admin.ensure("users", query, body)
    role = admin.find("roles", "name=admin")
    if role is None:
        raise RuntimeError("keystone has no role admin (keystone-manage bootstrap makes it)")
    admin.grant(project, user, role)


# -- nova-api ---------------------------------------------------------------------------------


def prepare_nova_api(
    directory: Path,
    keystone: Mapping[str, str],
    database_url_api: str = "",
    database_url: str = "",
    transport_url: str = "",
    memcache_servers: str = "",
) -> dict[str, str]:
    """A nova-api in ``directory`` (created if missing), prepared but not running, against the
    RUNNING keystone of ``keystone`` (prepare_keystone's parameters): a service user ``nova``
    with a random password (admin on project service), nova.conf and api-paste.ini in the
    directory, the API database and the main database synced (SQLite files in the directory
    unless URLs are given), a uwsgi ini, and the nova user's credentials in a 0600 file.
    Without ``transport_url`` the RPC transport is oslo.messaging's in-process fake: nova-api
    sends nothing anywhere to answer the requests a monitor makes.

    No cell is mapped: nova-api starts, answers ``GET /`` and authenticated reads
    (``/v2.1/flavors``, ``/v2.1/servers``) with the two schemas alone (found by trying; without
    either one the application does not load and uwsgi answers 500), and 'nova-manage cell_v2
    map_cell0 / create_cell' would cost two more Python start-ups. Each worker logs "ERROR
    nova.context ... No cells are configured, unable to continue" once as it starts (its
    service-version check over all cells), and serves all the same.

    Returns the nova-api agent's parameters, and for the tests ``_url`` and ``_log`` (nova's own
    log; ``log_file`` is uwsgi's).
    """
    account, state, logs, run = _service_layout(directory, "nova")
    port = free_port()
    url = f"http://{ADDRESS}:{port}"
    keystone_url = f"http://{keystone['address']}:{keystone['port']}"
    password = secrets.token_urlsafe(18)
    memcache = f"memcached_servers = {memcache_servers}\n" if memcache_servers else ""
    # nova-api-wsgi reads OS_NOVA_CONFIG_DIR/api-paste.ini and OS_NOVA_CONFIG_DIR/nova.conf;
    # the paste file is Debian's, with its health-check switch file moved into the sandbox.
    paste = Path(NOVA_API_PASTE).read_text(encoding="utf-8")
    paste = paste.replace("/etc/nova/healthcheck_disable", str(directory / "healthcheck_disable"))
    _write(directory / "api-paste.ini", paste, 0o640, group=account.pw_gid)
    config = directory / "nova.conf"
    _write(
        config,
        f"""[DEFAULT]
my_ip = {ADDRESS}
state_path = {state}
log_dir = {logs}
log_file = nova-api.log
transport_url = {transport_url or "fake://"}
[api]
auth_strategy = keystone
[api_database]
connection = {database_url_api or _sqlite_url(state / "nova_api.sqlite")}
[database]
connection = {database_url or _sqlite_url(state / "nova.sqlite")}
[wsgi]
api_paste_config = {directory}/api-paste.ini
{keystone_authtoken(keystone_url, "nova", password)}service_token_roles_required = true
{memcache}[oslo_concurrency]
lock_path = {state}/lock
{_cache_section(memcache_servers)}""",
        0o640,
        group=account.pw_gid,
    )
    manage = _manage_argv("nova-manage", config, logs)
    # The two schemas are independent: synced side by side (2 CPUs), while keystone gets the
    # service user. "db sync" alone would first look cell0's mapping up in the API database,
    # whose tables the other sync may not have made yet; --local_cell syncs [database] only.
    started = time.monotonic()
    syncs = [
        subprocess.Popen(
            [*manage, *verb],
            env={**BASE_ENV, "HOME": account.pw_dir},
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            cwd="/",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verb in (("api_db", "sync"), ("db", "sync", "--local_cell"))
    ]
    try:
        create_service_user(keystone, "nova", password)
        LOG.info("keystone: service user nova: %.1f s", time.monotonic() - started)
    finally:
        errors = [(sync.args, _finish(sync)) for sync in syncs]
    LOG.info("nova-manage api_db sync + db sync: %.1f s", time.monotonic() - started)
    for sync, (args, stderr) in zip(syncs, errors):
        if sync.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:1] + args[5:])} failed: {_tail(stderr)}\n"
                + _errors_in(logs / "nova-manage.log")
            )
    nova = credentials_text(f"{keystone_url}/v3", "nova", password, "service")
    return {
        **_agent_files("nova-api", directory, run, config, port, ("nova.credentials", nova)),
        "_url": url,
        "_log": str(logs / "nova-api.log"),
    }


# -- the services the lab configures from their record alone ------------------------------------

# The API services prepare_api_service sets up: everything the lab does for them (their config
# file's sections, their setup commands, their companion files) is in their record.
FROM_RECORD = ("placement-api", "glance-api", "neutron-server", "cinder-api")


def _in_sandbox(value: str, moves: Mapping[str, str]) -> str:
    """``value`` with a path under one of ``moves``' directories moved to its new place."""
    for old, new in moves.items():
        if value == old or value.startswith(old + "/"):
            return new + value[len(old) :]
    return value


def record_config(
    service: str,
    directory: Path,
    state: Path,
    logs: Path,
    database_urls: Mapping[str, str],
    transport_url: str,
) -> str:
    """``service``'s config file in the sandbox: its record's sections (the lab's, see
    stackha.lab.openstack.service_config) with the placeholders filled for one node on
    loopback, its databases at ``database_urls`` ({database: SQLAlchemy URL}), the paths of the
    record under the service's /var/lib and /etc directories moved into the sandbox, and its
    log in ``logs``. No [keystone_authtoken]: the caller adds it for its keystone."""
    api = service_named(service)
    values = {
        "node": socket.gethostname(),
        "address": ADDRESS,
        "vip": ADDRESS,
        "transport_url": transport_url or "fake://",
        **{f"db_{name}": url for name, url in database_urls.items()},
    }
    moves = {f"/var/lib/{api.user}": str(state), api.config_dir: str(directory)}
    sections: dict[str, dict[str, str]] = {
        "DEFAULT": {"log_dir": str(logs), "log_file": f"{service}.log"}
    }
    for section, options in api.lab.config:
        given = sections.setdefault(section, {})
        for key, value in options:
            given[key] = _in_sandbox(value.format_map(values), moves)
    return "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
        for section, options in sections.items()
    )


def setup_commands(
    service: str, directory: Path, config: Path
) -> list[tuple[str, list[str], tuple[int, ...]]]:
    """The record's setup commands for the sandbox: what each is called, its argv, the exit
    codes that mean done. The paths under the service's /etc directory are moved into
    ``directory``, and a command that names no config file gets ``--config-file CONFIG`` first
    (it would read Debian's)."""
    api = service_named(service)
    moves = {api.config_dir: str(directory)}
    commands = []
    for step in api.lab.setup:
        if step.env:
            raise ValueError(f"{service}: setup step {step.what} needs an environment")
        argv = [_in_sandbox(word, moves) for word in step.argv]
        if "--config-file" not in argv:
            argv[1:1] = ["--config-file", str(config)]
        commands.append((step.what, argv, step.accept))
    return commands


def prepare_api_service(
    directory: Path,
    service: str,
    keystone: Mapping[str, str],
    database_urls: Mapping[str, str],
    transport_url: str = "",
) -> dict[str, str]:
    """``service`` (one of FROM_RECORD) in ``directory`` (created if missing), prepared but not
    running, against the RUNNING keystone of ``keystone`` (prepare_keystone's parameters): a
    service user of the service's name with a random password (admin on project service), the
    config file of :func:`record_config` with a [keystone_authtoken] for that keystone, named
    as the service reads it, Debian's companion files beside it (glance-api-paste.ini, neutron's
    ML2 file and api-paste.ini, cinder's api-paste.ini), the record's lock directories, the
    record's setup commands run as the service's user (its database schema: ``database_urls``
    must reach empty databases), a uwsgi ini, and the service user's credentials in a 0600 file.
    Without ``transport_url`` the RPC transport is oslo.messaging's in-process fake.

    Returns the agent's parameters, and for the tests ``_url`` and ``_log`` (the service's own
    log; ``log_file`` is uwsgi's).
    """
    api = service_named(service)
    account, state, logs, run = _service_layout(directory, api.user)
    port = free_port()
    keystone_url = f"http://{keystone['address']}:{keystone['port']}"
    password = secrets.token_urlsafe(18)
    for name in api.companions:
        companion = directory / name
        for parent in reversed(companion.relative_to(directory).parents[:-1]):
            (directory / parent).mkdir(mode=0o755, exist_ok=True)
        text = Path(api.config_dir, name).read_text(encoding="utf-8")
        _write(companion, text, 0o640, group=account.pw_gid)
    for lock_dir in api.lab.lock_dirs:
        path = Path(_in_sandbox(lock_dir, {f"/var/lib/{api.user}": str(state)}))
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, account.pw_uid, account.pw_gid)
    config = directory / (api.config_name or Path(api.config).name)
    text = record_config(service, directory, state, logs, database_urls, transport_url)
    # holds the database's and keystone's passwords: readable by the service's group only
    _write(
        config,
        text + keystone_authtoken(keystone_url, api.user, password),
        0o640,
        group=account.pw_gid,
    )
    started = time.monotonic()
    create_service_user(keystone, api.user, password)
    LOG.info("keystone: service user %s: %.1f s", api.user, time.monotonic() - started)
    for what, argv, accept in setup_commands(service, directory, config):
        _run_manage(argv, account, what, accept=accept)
    credentials = credentials_text(f"{keystone_url}/v3", api.user, password, "service")
    return {
        **_agent_files(
            service, directory, run, config, port, (f"{api.user}.credentials", credentials)
        ),
        "_url": f"http://{ADDRESS}:{port}",
        "_log": str(logs / f"{service}.log"),
    }


# -- running one by hand, as the agent will ---------------------------------------------------


def start_service(parameters: Mapping[str, str], service: str) -> subprocess.Popen[bytes]:
    """uwsgi for ``service`` ("keystone" or "nova-api") started by hand as the agent will (its
    command line and environment, from stackha.services.openstack_api): as the service's user,
    so the pid is uwsgi's master (runuser would stay in between and, on SIGTERM, wait 2 s before
    it kills its child)."""
    api = service_named(service)
    address = socket_address(parameters["address"], int(parameters["port"]))
    account = pwd.getpwnam(api.user)
    ini = read_uwsgi_ini(parameters["uwsgi_ini"], address)
    return subprocess.Popen(
        uwsgi_argv(UWSGI, ini, uwsgi_pyargv(api, parameters["config"])),
        env={**BASE_ENV, **service_environment(api, parameters["config"])},
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_until_serving(
    parameters: Mapping[str, str],
    service: str,
    process: Optional[subprocess.Popen[bytes]] = None,
    timeout: float = START_TIMEOUT,
) -> float:
    """Seconds until the service answers its version document (keystone ``GET /v3``, nova-api
    ``GET /``) with 200; RuntimeError with the end of uwsgi's log when it does not in
    ``timeout`` or ``process`` exits. An answer alone is not enough: uwsgi whose workers could
    not load the application answers 500 ("no python application found")."""
    api = service_named(service)
    url = f"http://{parameters['address']}:{parameters['port']}{api.version_path}"
    started = time.monotonic()
    problem = "no answer"
    while time.monotonic() - started < timeout:
        try:
            answer = http_client.get(url, 5, {"Accept": "application/json"})
            problem = version_document_ok(answer.status, answer.body, api) or ""
            if not problem:
                return time.monotonic() - started
        except http_client.NotReachable as err:
            problem = str(err)
        if process is not None and process.poll() is not None:
            problem = f"uwsgi exited with {process.returncode}"
            break
        time.sleep(0.1)
    raise RuntimeError(f"{service}: {problem}\n{_log_tail(parameters['log_file'])}")


def _log_tail(path: str) -> str:
    try:
        return _tail(Path(path).read_text(encoding="utf-8", errors="replace"), 20)
    except OSError:
        return ""


def _pids_running(uwsgi_ini: str) -> list[int]:
    """Live processes whose command line names ``uwsgi_ini`` (a path unique to one sandbox)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if uwsgi_ini.encode() not in (entry / "cmdline").read_bytes():
                continue
            if (entry / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                continue  # a zombie is gone, its parent has not reaped it yet
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def stop_leftovers(parameters: Mapping[str, str], seconds: float = 10.0) -> list[int]:
    """Stop by pid whatever still runs from this sandbox's uwsgi ini (an agent's stop that did
    not happen, a test that failed half way); the pids it found. SIGTERM, then after
    ``seconds`` SIGKILL (see stop_uwsgi for why uwsgi may need it)."""
    pids = _pids_running(parameters["uwsgi_ini"])
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_running(parameters["uwsgi_ini"]):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + seconds
        while _pids_running(parameters["uwsgi_ini"]) and time.monotonic() < deadline:
            time.sleep(0.1)
    return pids


def stop_uwsgi(
    process: subprocess.Popen[bytes], parameters: Mapping[str, str], seconds: float = 15.0
) -> float:
    """SIGTERM to the uwsgi master we started; the seconds it took to exit. With die-on-term it
    stops its workers and exits in about 1 s — unless a worker was still loading the
    application (lazy-apps) when SIGTERM came: that worker stays, "in full dynamic mode", until
    uwsgi's worker-reload-mercy (60 s) is over. So after ``seconds``, SIGKILL to the workers
    (before the master, which reaps them), then to the master."""
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            for pid in _pids_running(parameters["uwsgi_ini"]):
                if pid != process.pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    return time.monotonic() - started


_APP_READY = b"WSGI app 0 (mountpoint='') ready in "


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def wait_until_all_workers_loaded(
    parameters: Mapping[str, str], log_offset: int, timeout: float = START_TIMEOUT
) -> float:
    """Seconds until every uwsgi worker has loaded the application, as its log (``log_file``,
    read from ``log_offset``) says: the version document answers as soon as one has, and a stop
    while another still loads takes 60 s (see stop_uwsgi)."""
    address = f"{parameters['address']}:{parameters['port']}"
    workers = read_uwsgi_ini(parameters["uwsgi_ini"], address).processes
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with open(parameters["log_file"], "rb") as log:
            log.seek(log_offset)
            if log.read().count(_APP_READY) >= workers:
                return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"not all {workers} uwsgi workers loaded the application in {timeout} s")


@contextmanager
def running_service(
    parameters: Mapping[str, str], service: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``service`` started by hand as the agent would, serving with all its workers; stopped by
    pid afterwards."""
    offset = _log_size(parameters["log_file"])
    process = start_service(parameters, service)
    try:
        elapsed = wait_until_serving(parameters, service, process)
        LOG.info("%s: version document 200 after %.1f s", service, elapsed)
        wait_until_all_workers_loaded(parameters, offset)
        yield process
    finally:
        stop_uwsgi(process, parameters)
        stop_leftovers(parameters)


# -- memcached and MariaDB for the integration tests ------------------------------------------


@contextmanager
def memcached() -> Iterator[str]:
    """A private memcached on a free loopback port (UDP off, 32 MB), as the user memcache;
    yields "127.0.0.1:PORT" and stops it by pid afterwards."""
    port = free_port()
    process = subprocess.Popen(
        ["memcached", "-u", "memcache", "-l", ADDRESS, "-p", str(port), "-U", "0", "-m", "32"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((ADDRESS, port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"memcached did not listen on {ADDRESS}:{port}") from None
                time.sleep(0.05)
        yield f"{ADDRESS}:{port}"
    finally:
        stop_child(process, 5)


def mariadb_database(galera: Mapping[str, str], name: str) -> str:
    """A database ``name`` and a user of that name with a random password in the running
    MariaDB of mariadb_sandbox.one_member_galera (``galera`` is its parameters); the SQLAlchemy
    URL that reaches it over TCP on loopback. The SQL goes on stdin: no password in argv."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"{name!r} is not a plain database name")
    port = re.search(r"^port\s*=\s*(\d+)", Path(galera["config"]).read_text(), re.M)
    if port is None:
        raise ValueError(f"{galera['config']} sets no port")
    password = secrets.token_hex(16)
    statements = (
        f"CREATE DATABASE {name};\n"
        f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL ON {name}.* TO '{name}'@'%';\n"
    )
    result = subprocess.run(
        ["mariadb", f"--socket={galera['socket']}", "--batch"],
        input=statements,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise RuntimeError(f"creating database {name}: {result.stderr.strip()}")
    return f"mysql+pymysql://{name}:{password}@{ADDRESS}:{port.group(1)}/{name}"


def rabbitmq_transport_url(
    rabbitmq: Mapping[str, str], user: str, password: str, vhost: str
) -> str:
    """nova's transport_url for the broker of rabbitmq_sandbox.one_node_rabbitmq, whose
    parameters (``rabbitmq``) name no AMQP port: it is NODE_PORT in its env_file. RabbitMQ's
    default user guest/guest is allowed from loopback."""
    port = re.search(r"^NODE_PORT=(\d+)", Path(rabbitmq["env_file"]).read_text(), re.M)
    if port is None:
        raise ValueError(f"{rabbitmq['env_file']} sets no NODE_PORT")
    return f"rabbit://{user}:{password}@{ADDRESS}:{port.group(1)}/{vhost.lstrip('/')}"


# -- self-check -------------------------------------------------------------------------------


def _processes_of(pid: int) -> list[str]:
    """``pid`` and its children as "pid user" lines (ps), to show master and workers."""
    result = subprocess.run(
        ["ps", "-o", "pid=,ppid=,user=,rss=", "-p", str(pid), "--ppid", str(pid)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


def _timed_get(url: str, token: str = "") -> tuple[int, float]:
    started = time.monotonic()
    headers = {"Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    answer = http_client.get(url, 30, headers)
    return answer.status, time.monotonic() - started


def _check_service(
    parameters: Mapping[str, str], service: str, label: str, requests: Callable[[], None]
) -> None:
    """Start ``service`` by hand as the agent will, make ``requests``, stop it; print figures."""
    offset = _log_size(parameters["log_file"])
    process = start_service(parameters, service)
    try:
        seconds = wait_until_serving(parameters, service, process)
        print(f"{label}: version document 200 after {seconds:.1f} s")
        seconds += wait_until_all_workers_loaded(parameters, offset)
        print(f"{label}: every worker loaded after {seconds:.1f} s")
        print(f"{label}: pid ppid user rss(KiB): {_processes_of(process.pid)}")
        requests()
    finally:
        seconds = stop_uwsgi(process, parameters)
        print(
            f"{label}: uwsgi exited {process.returncode} {seconds:.2f} s after SIGTERM; "
            f"left over: {_pids_running(parameters['uwsgi_ini'])}"
        )


def _tokens(parameters: Mapping[str, str], label: str) -> Callable[[], None]:
    def requests() -> None:
        credentials = read_openstack_credentials(parameters["credentials"])
        for _ in range(3):
            started = time.monotonic()
            issue_token(credentials, 30)
            print(f"{label}: token (201) in {time.monotonic() - started:.2f} s")

    return requests


def _nova_requests(parameters: Mapping[str, str]) -> None:
    token = issue_token(read_openstack_credentials(parameters["credentials"]), 30)
    for path in ("/", "/v2.1/", "/v2.1/flavors", "/v2.1/servers", "/v2.1/flavors"):
        for shown, sent in (("none", ""), ("bogus", "bogus"), ("token", token)):
            status, seconds = _timed_get(parameters["_url"] + path, sent)
            print(f"nova-api: GET {path} token={shown}: {status} {seconds:.3f} s")


def _self_check(galera: bool) -> None:
    with reachable_directory() as root:
        started = time.monotonic()
        keystone = prepare_keystone(root / "keystone")
        print(f"prepare_keystone: {time.monotonic() - started:.1f} s")
        _check_service(keystone, "keystone", "keystone", _tokens(keystone, "keystone"))

        with running_service(keystone, "keystone"):
            started = time.monotonic()
            nova = prepare_nova_api(root / "nova", keystone)
            print(f"prepare_nova_api: {time.monotonic() - started:.1f} s")
            _check_service(nova, "nova-api", "nova-api", lambda: _nova_requests(nova))

        with memcached() as servers:
            cached = prepare_keystone(root / "keystone-memcached", memcache_servers=servers)
            label = "keystone+memcached"
            _check_service(cached, "keystone", label, _tokens(cached, label))
            host, port = servers.rsplit(":", 1)
            with socket.create_connection((host, int(port))) as connection:
                connection.sendall(b"stats\r\nquit\r\n")
                stats = connection.makefile().read()
            items = re.search(r"STAT curr_items (\d+)", stats)
            print(f"memcached {servers}: curr_items {items.group(1) if items else '?'}")

        if galera:
            _check_galera(root)


def _sqlite_files(root: Path) -> list[str]:
    return [str(path.relative_to(root)) for path in root.glob("keystone-galera/**/*.sqlite")]


def _deep_check(parameters: Mapping[str, str], service: str) -> Callable[[], None]:
    def requests() -> None:
        credentials = read_openstack_credentials(parameters["credentials"])
        started = time.monotonic()
        check_authenticated(service_named(service), parameters["_url"], credentials, _Waits())
        print(f"{service}: depth-20 check in {time.monotonic() - started:.2f} s")

    return requests


class _Waits:
    """Each request of the self-check's deep check gets 30 s (a stackha.clock.Waits)."""

    def timed(self, what: str, wait: Callable[[float], _T]) -> _T:
        return wait(30.0)


def _check_galera(root: Path) -> None:
    started = time.monotonic()
    with running_galera(root / "galera") as params:
        print(f"mariadbd (Galera, one member) ready in {time.monotonic() - started:.1f} s")
        url = mariadb_database(params, "keystone")
        started = time.monotonic()
        keystone = prepare_keystone(root / "keystone-galera", database_url=url)
        print(f"prepare_keystone on Galera: {time.monotonic() - started:.1f} s")
        tables = subprocess.run(
            [
                "mariadb",
                f"--socket={params['socket']}",
                "-N",
                "-B",
                "-e",
                "SHOW TABLES IN keystone",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.split()
        print(f"keystone's tables in MariaDB: {len(tables)}; SQLite files: {_sqlite_files(root)}")
        label = "keystone+galera"
        _check_service(keystone, "keystone", label, _tokens(keystone, label))
        with running_service(keystone, "keystone"):
            for name in FROM_RECORD:
                urls = {
                    db: mariadb_database(params, db) for db in service_named(name).lab.databases
                }
                started = time.monotonic()
                prepared = prepare_api_service(root / name, name, keystone, urls)
                print(f"prepare_api_service {name} on Galera: {time.monotonic() - started:.1f} s")
                _check_service(prepared, name, name, _deep_check(prepared, name))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--galera",
        action="store_true",
        help="keystone, then placement, glance, neutron and cinder on MariaDB Galera too",
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    _self_check(options.galera)
