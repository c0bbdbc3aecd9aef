"""What stackha knows about running the OpenStack API services, with no OCF in it (each service's
own facts are its record in :mod:`stackha.services.api_catalog`): how Debian runs them under
uwsgi, where they listen, what a healthy one answers, and how to get a Keystone token for a
deeper check.

How Debian 12 runs them (keystone 22 "Zed", nova-api 26): ``/etc/init.d/keystone`` starts
``uwsgi_python311 --http-socket :5000 --ini /etc/keystone/keystone-uwsgi.ini`` under
start-stop-daemon, which writes the pid file itself; nova-api is the same with ``:8774`` and
``/etc/nova/nova-api-uwsgi.ini``. The ini files Debian ships leave ``http-socket`` commented out
and name no pid file: the listening address lives in the init script, not in the file.

What the monitor asks, by cost:

- the unauthenticated version document (keystone ``GET /v3``, nova ``GET /``): one HTTP request,
  answered by the WSGI application itself, so it proves uwsgi accepts connections and the
  application loaded (a uwsgi whose application failed to load answers 500);
- a Keystone token (``POST /v3/auth/tokens``): reaches the database and the Fernet keys; for the
  deep check, with credentials read from a file, never from the CIB or a command line.

The old agents (openstack-resource-agents, 2012) ran ``keystone user-list`` with the password on
the command line and scraped Keystone v2.0 JSON with ``tr | grep | cut``; both are gone here.
"""

from __future__ import annotations

import re

from stackha import http_client
from stackha.credentials import CredentialsFileError, read_credentials_file
from stackha.record import Record

# typing is for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from stackha.clock import Waits
    from stackha.services.api_catalog import ApiService


class OpenStackApiError(Exception):
    """An API service refused, failed, or answered something unusable; the message says which."""


class ConfigError(OpenStackApiError):
    """A uwsgi ini file or a listening address cannot be used."""


class CredentialsError(OpenStackApiError):
    """The credentials file is missing, unreadable or incomplete, or Keystone refused them."""


# -- where it listens -------------------------------------------------------------------------

# Wildcard binds and the loopback address that reaches them. uwsgi binds ":5000" to 0.0.0.0 (IPv4
# only); whether "[::]:5000" takes IPv4 too depends on net.ipv6.bindv6only, ::1 reaches it always.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}


def listen_endpoint(text: str) -> tuple[str, int]:
    """(host, port) of a uwsgi TCP address: ``:5000`` → ("", 5000), ``0.0.0.0:5000``,
    ``[::]:8774`` → ("::", 8774), ``127.0.0.1:8774``, ``controller1:5000``. Whatever follows a
    comma (``https-socket``'s certificate and key) is not part of the address. An empty host
    means every IPv4 address. Raises :class:`ConfigError` for a UNIX socket, a shared-socket
    reference (``=0``) or anything without a port number."""
    address = text.split(",", 1)[0].strip()
    if not address:
        raise ConfigError("the address is empty")
    if address.startswith(("/", "@", "./", "=")) or ":" not in address:
        raise ConfigError(f"{address} is not a TCP address (host:port)")
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ConfigError(f"{address} is not a TCP address ([IPv6]:port)")
        port_text = rest[1:]
    else:
        host, _, port_text = address.rpartition(":")
        if ":" in host:
            raise ConfigError(f"{address}: an IPv6 address needs brackets ([{host}]:{port_text})")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{address}: port {port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


def probe_host(host: str) -> str:
    """The address to probe a service bound to ``host`` at: loopback for a wildcard bind
    (127.0.0.1 for "", 0.0.0.0 and *, ::1 for ::), else ``host`` itself."""
    return _WILDCARDS.get(host, host)


def endpoint_url(host: str, port: int, scheme: str = "http") -> str:
    """``scheme://host:port`` with an IPv6 host in brackets, and no trailing slash."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


# -- the uwsgi ini file -----------------------------------------------------------------------

# uwsgi options that bind a listening socket, and the protocol each speaks. "socket" speaks the
# default protocol: uwsgi's own unless "protocol"/"socket-protocol" says otherwise.
_SOCKET_OPTIONS = {
    "http-socket": "http",
    "https-socket": "https",
    "http": "http",  # the HTTP router: a separate process in front of the workers
    "https": "https",
    "uwsgi-socket": "uwsgi",
    "socket": "",
}
# uwsgi_opt_true: any value but these (an empty one too) switches a flag on.
_FALSE = ("false", "off", "no", "0")
_PLACEHOLDER = re.compile(r"%\([\w-]+\)|%[dpsnec%]")


class Listener(Record):
    """One listening socket of a uwsgi instance. ``host`` is a path and ``port`` 0 for a UNIX
    socket. ``from_file`` is False for the default the caller passes on uwsgi's command line, as
    Debian's init script does with ``--http-socket :5000``."""

    __slots__ = ("option", "address", "scheme", "host", "port", "from_file")
    option: str
    address: str
    scheme: str
    host: str
    port: int
    from_file: bool

    def __init__(
        self, option: str, address: str, scheme: str, host: str, port: int, from_file: bool
    ) -> None:
        self._freeze(locals())

    @property
    def is_unix(self) -> bool:
        return self.port == 0

    @property
    def speaks_http(self) -> bool:
        return self.scheme in ("http", "https")

    def url(self) -> str:
        """The URL to probe it at (loopback for a wildcard bind)."""
        return endpoint_url(probe_host(self.host), self.port, self.scheme)


class UwsgiConfig(Record):
    """The ``[uwsgi]`` section of an ini file, the parts an agent needs. ``options`` holds every
    option with its values in file order (an option may be given more than once), placeholders
    expanded; the fields hold the value uwsgi uses (the last one, for single-valued options)."""

    __slots__ = (
        "path",
        "listeners",
        "http_listener",
        "pidfile",
        "master",
        "processes",
        "threads",
        "uid",
        "gid",
        "wsgi_file",
        "module",
        "chdir",
        "logto",
        "daemonize",
        "plugins",
        "options",
    )
    path: str
    listeners: tuple[Listener, ...]
    http_listener: Listener
    pidfile: Optional[str]
    master: bool
    processes: int
    threads: int
    uid: Optional[str]
    gid: Optional[str]
    wsgi_file: Optional[str]
    module: Optional[str]
    chdir: Optional[str]
    logto: Optional[str]
    daemonize: Optional[str]
    plugins: tuple[str, ...]
    options: Mapping[str, tuple[str, ...]]

    def __init__(
        self,
        path: str,
        listeners: tuple[Listener, ...],
        http_listener: Listener,
        pidfile: Optional[str],
        master: bool,
        processes: int,
        threads: int,
        uid: Optional[str],
        gid: Optional[str],
        wsgi_file: Optional[str],
        module: Optional[str],
        chdir: Optional[str],
        logto: Optional[str],
        daemonize: Optional[str],
        plugins: tuple[str, ...],
        options: Mapping[str, tuple[str, ...]],
    ) -> None:
        self._freeze(locals())


def read_uwsgi_ini(path: str, default_http_socket: str = "") -> UwsgiConfig:
    """:func:`parse_uwsgi_ini` of the file at ``path``; an unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"uwsgi ini {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"uwsgi ini {path} is not UTF-8 text") from None
    return parse_uwsgi_ini(text, path, default_http_socket)


def _raw_options(text: str) -> list[tuple[str, str]]:
    # uwsgi's own ini reader (core/ini.c), not configparser's: an option may repeat (every
    # http-socket binds), a line without "=" is an option with an empty value, only whole-line
    # comments exist ("#" or ";"), and nothing is continued on the next line.
    options = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            section = line[1:-1] if line.endswith("]") else line[1:]
            continue
        if section == "uwsgi":
            key, _, value = line.partition("=")
            options.append((key.strip(), value.strip()))
    return options


def _expander(options: list[tuple[str, str]], path: str) -> Mapping[str, str]:
    """What ``%(name)`` and the magic ``%d``-style variables stand for."""
    import os.path

    values: dict[str, str] = {}
    for key, value in options:
        if key in ("set", "set-placeholder", "set-ph") and "=" in value:
            name, _, value = value.partition("=")
            key = name.strip()
        values[f"%({key})"] = value  # any option, even one uwsgi does not know, is a placeholder
    values["%%"] = "%"
    if path:
        absolute = os.path.abspath(path)
        name = os.path.basename(absolute)
        stem, extension = os.path.splitext(name)
        directory = os.path.dirname(absolute)
        values.update(
            {
                "%d": directory.rstrip("/") + "/",
                "%p": absolute,
                "%s": name,
                "%n": stem,
                "%e": extension.lstrip("."),
                "%c": os.path.basename(directory),
            }
        )
    return values


def _expand(value: str, values: Mapping[str, str], depth: int = 0) -> str:
    if "%" not in value or depth > 8:
        return value

    def one(match: re.Match[str]) -> str:
        found = values.get(match.group(0))
        return match.group(0) if found is None else _expand(found, values, depth + 1)

    return _PLACEHOLDER.sub(one, value)


def _listener(option: str, value: str, scheme: str, from_file: bool) -> Listener:
    address = value.split(",", 1)[0].strip()
    # uwsgi takes an address without a colon for a UNIX socket path ("@name": abstract)
    if address.startswith(("/", "@", ".")) or (
        address and ":" not in address and address[0] != "="
    ):
        return Listener(option, address, scheme, address, 0, from_file)
    host, port = listen_endpoint(address)
    return Listener(option, address, scheme, host, port, from_file)


def parse_uwsgi_ini(text: str, path: str = "", default_http_socket: str = "") -> UwsgiConfig:
    """The ``[uwsgi]`` section of a uwsgi ini file.

    ``default_http_socket`` is the address given on uwsgi's command line as ``--http-socket``
    when the file has no HTTP listener of its own: Debian's files have none and its init script
    passes ``--http-socket :5000`` (keystone) or ``:8774`` (nova-api). ``%(option)``, ``set-ph``
    placeholders and the magic ``%d %p %s %n %e %c`` are expanded (``%d`` needs ``path``);
    ``$(ENV)`` and ``@(file)`` are not: a listener that still holds one is an error.

    Raises :class:`ConfigError` naming the file and the problem: no ``[uwsgi]`` section (uwsgi
    only warns and runs with none of the file's settings), a listener that is not an address, a
    count that is not a number, or no listener an HTTP probe can reach.
    """
    where = path or "uwsgi ini"
    raw = _raw_options(text)
    if not raw:
        # uwsgi counts a section without options as missing too (core/ini.c: got_section).
        raise ConfigError(f"{where} has no [uwsgi] section with options")
    values = _expander(raw, path)
    expanded = [(key, _expand(value, values)) for key, value in raw]
    options: dict[str, list[str]] = {}
    for key, value in expanded:
        options.setdefault(key, []).append(value)

    def last(*names: str) -> Optional[str]:
        # the value given last wins, whichever of the aliases gave it
        given = [value for key, value in expanded if key in names and value]
        return given[-1] if given else None

    def flag(name: str) -> bool:
        given = options.get(name)
        return given is not None and given[-1].lower() not in _FALSE

    def count(*names: str) -> int:
        value = last(*names)
        if value is None:
            return 1
        if not value.isdigit():
            raise ConfigError(f"{where}: {names[0]} = {value} is not a number")
        return int(value)

    default_protocol = last("protocol", "socket-protocol") or "uwsgi"
    listeners = []
    for (key, value), (_, original) in zip(expanded, raw):
        if key not in _SOCKET_OPTIONS:
            continue
        if "%(" in value or "$(" in value or "@(" in value:
            raise ConfigError(
                f"{where}: {key} = {original}: a placeholder this parser does not expand"
            )
        scheme = _SOCKET_OPTIONS[key] or default_protocol
        try:
            listeners.append(_listener(key, value, scheme, True))
        except ConfigError as err:
            raise ConfigError(f"{where}: {key}: {err}") from None
    reachable = [lst for lst in listeners if lst.speaks_http and not lst.is_unix]
    if not reachable and default_http_socket:
        try:
            default = _listener("http-socket", default_http_socket, "http", False)
        except ConfigError as err:
            raise ConfigError(f"--http-socket: {err}") from None
        listeners.append(default)
        reachable.append(default)
    if not reachable:
        if not listeners:
            raise ConfigError(
                f"{where} declares no listening socket (http-socket, https-socket, http, "
                "https or socket) and no --http-socket is given for the command line (Debian's "
                "files leave it to the init script)"
            )
        shown = ", ".join(f"{lst.option} = {lst.address}" for lst in listeners)
        raise ConfigError(
            f"{where} has no TCP socket that speaks HTTP ({shown}); an HTTP probe cannot "
            "reach it: add an http-socket"
        )
    plugins = tuple(
        p.strip()
        for key in ("plugins", "plugin")
        for v in options.get(key, ())
        for p in v.split(",")
    )
    return UwsgiConfig(
        path=path,
        listeners=tuple(listeners),
        http_listener=reachable[0],
        # pidfile is written before uwsgi drops privileges, pidfile2 after; both name the master
        pidfile=last("pidfile") or last("pidfile2"),
        master=flag("master"),
        processes=count("processes", "workers"),
        threads=count("threads"),
        uid=last("uid"),
        gid=last("gid"),
        wsgi_file=last("wsgi-file", "file"),
        module=last("module", "wsgi"),
        chdir=last("chdir"),
        logto=last("logto"),
        daemonize=last("daemonize", "daemonize2"),
        plugins=tuple(p for p in plugins if p),
        options={key: tuple(found) for key, found in options.items()},
    )


# -- how it is started ------------------------------------------------------------------------


def socket_address(host: str, port: int) -> str:
    """``host:port`` as uwsgi's ``--http-socket`` takes it (``[::1]:5000`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_environment(service: ApiService, config: str) -> dict[str, str]:
    """The environment that points the service's WSGI application at ``config``."""
    import os

    directory, name = os.path.split(os.path.abspath(config))
    return {
        variable: value.format(dir=directory, name=name) for variable, value in service.config_env
    }


def companion_files(service: ApiService, config: str) -> list[str]:
    """The files besides ``config`` that the service reads from its directory (nova's
    ``api-paste.ini``)."""
    import os

    directory = os.path.dirname(os.path.abspath(config))
    return [os.path.join(directory, name) for name in service.companions]


def config_name_problem(service: ApiService, config: str) -> Optional[str]:
    """Why ``service`` cannot be pointed at ``config``, or None: one that reads one file name
    from a directory (placement reads ``placement.conf`` from OS_PLACEMENT_CONFIG_DIR) cannot
    read a file of another name, and uwsgi splits its ``--pyargv`` at spaces."""
    import os

    name = os.path.basename(config)
    if service.config_name and name != service.config_name:
        return (
            f"config = {config}: {service.name} reads {service.config_name} from the directory "
            "it is given; name the file so"
        )
    if service.uwsgi_args and " " in config:
        return f"config = {config!r}: uwsgi passes it on a --pyargv, which a space would split"
    return None


def uwsgi_argv(binary: str, ini: UwsgiConfig, pyargv: Sequence[str] = ()) -> list[str]:
    """uwsgi's command line for ``ini`` (read with the agent's address as the default socket),
    with ``pyargv`` as the application's sys.argv[1:].

    ``--die-on-term`` always: without it uwsgi takes SIGTERM as "reload brutally" and a stop
    would never end the service. The listening socket is passed only when the file has none of
    its own, as Debian's init script does.
    """
    argv = [binary, "--ini", ini.path, "--die-on-term"]
    if not ini.http_listener.from_file:
        argv += ["--http-socket", ini.http_listener.address]
    if pyargv:
        argv += ["--pyargv", " ".join(pyargv)]
    return argv


def uwsgi_pyargv(service: ApiService, config: str) -> list[str]:
    """The arguments uwsgi passes ``service``'s application for ``config`` (its
    ``uwsgi_args``)."""
    import os

    directory = os.path.dirname(os.path.abspath(config))
    return [arg.format(config=os.path.abspath(config), dir=directory) for arg in service.uwsgi_args]


def executable_argv(
    service: ApiService, executable: str, config: str, host: str, port: int, listen_config: str
) -> list[str]:
    """The command line of the service's own server (``executable`` mode)."""
    import os

    values = {
        "host": host,
        "port": str(port),
        "config": config,
        "dir": os.path.dirname(os.path.abspath(config)),
        "listen_config": listen_config,
    }
    return [executable] + [arg.format(**values) for arg in service.executable_args]


def listen_config_text(service: ApiService, host: str, port: int) -> str:
    """The extra config file that sets the listening address for a server that takes it from
    its configuration only (nova-api: ``osapi_compute_listen``, and ``enabled_apis`` so that it
    serves the compute API alone); "" when none is needed. Read after the service's own config
    file, it overrides these options there."""
    if service.listen_options is None:
        return ""
    section, host_key, port_key = service.listen_options
    settings = "".join(f"{key} = {value}\n" for key, value in service.listen_settings)
    return (
        f"{listen_config_header(service)}\n"
        f"[{section}]\n{host_key} = {host}\n{port_key} = {port}\n{settings}"
    )


def listen_config_header(service: ApiService) -> str:
    """The first line of the listen file: what tells the agent the file is its own."""
    return f"# written by ocf:stackha:{service.name}"


def check_service_config(path: str) -> None:
    """Raise :class:`ConfigError` naming ``path`` and the first bad line when the service's
    oslo.config file cannot be read or does not parse as an ini file. Only the syntax: what the
    options mean is the service's to judge when it starts."""
    import configparser

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"config {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    # oslo.config accepts repeated sections and options (the last wins) and no interpolation.
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as err:
        raise ConfigError(
            f"config {path} does not parse: line {err.lineno} is outside any [section]"
        ) from None
    except configparser.ParsingError as err:
        lineno = err.errors[0][0] if err.errors else 0
        raise ConfigError(
            f"config {path} does not parse: line {lineno} is not 'name = value'"
        ) from None
    except configparser.Error as err:
        raise ConfigError(f"config {path} does not parse: {err.message}") from None


def own_address(hostname: str) -> str:
    """The IPv4 address (else IPv6) ``hostname`` resolves to: where a service of a clone binds
    on each node when no address is given, so that HAProxy can own the port on the VIP. A name
    that resolves to loopback only (Debian's 127.0.1.1 line) is refused: nothing else could
    reach the service there."""
    import ipaddress
    import socket

    try:
        found = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise ConfigError(
            f"host name {hostname} does not resolve: {http_client.why_failed(err)}"
        ) from None
    addresses = [str(entry[4][0]) for entry in found]
    usable = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if not usable:
        raise ConfigError(
            f"host name {hostname} resolves to loopback only ({', '.join(addresses)}): "
            "set address to this node's address"
        )
    usable.sort(key=lambda a: ":" in a)  # IPv4 first
    return usable[0]


def port_problem(host: str, port: int) -> Optional[str]:
    """Why a server could not listen on ``host:port`` now, or None when it could: the port is
    taken by another process, or the address is not one of this node's. A wildcard host is
    tried as uwsgi binds it (0.0.0.0)."""
    import errno
    import socket

    bind_host = {"": "0.0.0.0", "*": "0.0.0.0"}.get(host, host)
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as uwsgi and every server does: a port in TIME_WAIT is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind_host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return f"port {port} on {bind_host} is already in use by another process"
            if err.errno == errno.EADDRNOTAVAIL:
                return f"address {bind_host} is not an address of this node"
            return (
                f"cannot listen on {socket_address(bind_host, port)}: {http_client.why_failed(err)}"
            )
    return None


# -- what a healthy service answers -----------------------------------------------------------


def _version_ids(data: object, key: str) -> list[str]:
    entries = data.get(key) if isinstance(data, dict) else None
    if isinstance(entries, dict):
        entries = entries.get("values")  # keystone's GET /: {"versions": {"values": [...]}}
    if not isinstance(entries, list):
        return []
    return [str(e.get("id", "")) for e in entries if isinstance(e, dict)]


def version_document_ok(status: int, body: str, service: ApiService) -> Optional[str]:
    """None when ``body`` is what a healthy ``service`` answers to its version request, else a
    one-line problem naming the HTTP status (``GET /v3 answered 503 Service Unavailable``).

    keystone 22, ``GET /v3``: 200 ``{"version": {"id": "v3.14", "status": "stable", ...}}``.
    nova-api 26, ``GET /``: 200 ``{"versions": [{"id": "v2.0", "status": "SUPPORTED"}, {"id":
    "v2.1", "status": "CURRENT", "version": "2.93", "min_version": "2.1"}]}``; nova answers 300
    ``{"choices": [...]}`` to other paths. keystone's ``GET /`` nests the list:
    ``{"versions": {"values": [...]}}``. Only the version id is checked (the service's
    ``version_id``, or it followed by a minor version: ``v3`` accepts ``v3.14``): the status
    strings are the services' to change, and the id is what tells that the application
    answering is keystone v3 or nova v2.1 and not something else on the port.
    """
    import json

    request = f"GET {service.version_path}"
    answered = f"{request} answered {http_client.status_text(status)}"
    if status not in service.version_statuses:
        return answered
    try:
        data = json.loads(body)
    except ValueError:
        return f"{answered} but not JSON"
    version = data.get("version") if isinstance(data, dict) else None
    ids = [str(version.get("id", ""))] if isinstance(version, dict) else []
    ids += _version_ids(data, "versions") + _version_ids(data, "choices")
    wanted = service.version_id
    if any(found == wanted or found.startswith(wanted + ".") for found in ids):
        return None
    return f"{answered} without a {wanted} version document"


# -- credentials and tokens -------------------------------------------------------------------

CREDENTIAL_KEYS = (
    "auth_url",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
)
DOMAIN_DEFAULT = "Default"


class Credentials(Record):
    """A Keystone v3 user scoped to a project. Its repr never shows the password."""

    __slots__ = CREDENTIAL_KEYS
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str
    project_domain_name: str

    def __init__(
        self,
        auth_url: str,
        username: str,
        password: str,
        project_name: str,
        user_domain_name: str = DOMAIN_DEFAULT,
        project_domain_name: str = DOMAIN_DEFAULT,
    ) -> None:
        self._freeze(locals())

    def __repr__(self) -> str:
        return (
            f"Credentials(auth_url={self.auth_url!r}, username={self.username!r}, "
            f"password='***', project_name={self.project_name!r}, "
            f"user_domain_name={self.user_domain_name!r}, "
            f"project_domain_name={self.project_domain_name!r})"
        )


def read_openstack_credentials(path: str) -> Credentials:
    """Credentials from a credentials file (:mod:`stackha.credentials`): ``auth_url``,
    ``username``, ``password``, ``project_name``, and ``user_domain_name`` /
    ``project_domain_name`` (both "Default" when absent). An openrc file's ``export
    OS_USERNAME=...`` lines are read too, so the file an operator already has for the
    ``openstack`` command works. Other keys are ignored.

    Raises :class:`CredentialsError` naming the file and what is wrong with it (the missing keys),
    never a value from it.
    """
    try:
        fields = read_credentials_file(path, env_prefix="OS_")
    except CredentialsFileError as err:
        raise CredentialsError(str(err)) from None
    missing = [k for k in CREDENTIAL_KEYS[:4] if not fields.get(k)]
    if missing:
        raise CredentialsError(f"credentials file {path} lacks {', '.join(missing)}")
    auth_url = fields["auth_url"]
    if not auth_url.startswith(("http://", "https://")):
        raise CredentialsError(f"credentials file {path}: auth_url is not an http(s) URL")
    return Credentials(
        auth_url=auth_url,
        username=fields["username"],
        password=fields["password"],
        project_name=fields["project_name"],
        user_domain_name=fields.get("user_domain_name") or DOMAIN_DEFAULT,
        project_domain_name=fields.get("project_domain_name") or DOMAIN_DEFAULT,
    )


def token_url(auth_url: str) -> str:
    """Where to ask for a token: ``{auth_url}/auth/tokens`` for a v3 ``auth_url``, with ``/v3``
    added to one that names no version (``http://controller:5000/``, as nova.conf's
    ``www_authenticate_uri`` does). A v2.0 URL is refused: Keystone no longer has that API."""
    base = auth_url.rstrip("/")
    last = base.rpartition("/")[2]
    if last == "v3":
        return f"{base}/auth/tokens"
    if last.startswith("v2"):
        shown = http_client.shown_url(auth_url)
        raise CredentialsError(f"auth_url {shown} is Keystone v2.0, which was removed; use /v3")
    return f"{base}/v3/auth/tokens"


def token_request_body(credentials: Credentials) -> dict[str, object]:
    """The Keystone v3 password-authentication request, scoped to the project."""
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": credentials.username,
                        "domain": {"name": credentials.user_domain_name},
                        "password": credentials.password,
                    }
                },
            },
            "scope": {
                "project": {
                    "name": credentials.project_name,
                    "domain": {"name": credentials.project_domain_name},
                }
            },
        }
    }


def _answer_message(body: str, password: str = "") -> str:
    """The service's own message in an error answer, short, on one line and without
    ``password``, or "". The shapes the services answer in: keystone's ``{"error": {"message":
    ...}}``, nova's and neutron's ``{"computeFault": {"message": ...}}`` (a fault's name as
    the key), and webob's own ``{"message": ..., "title": ...}``, which keystonemiddleware's
    refusals are (with ``<br />`` in it)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = data.get("message")
    if not isinstance(message, str):
        nested = [v.get("message") for v in data.values() if isinstance(v, dict)]
        message = next((m for m in nested if isinstance(m, str)), None)
    if not isinstance(message, str):
        return ""
    # Keystone quotes what it was sent only with insecure_debug, but then maybe escaped or in a
    # Python repr: mask each form.
    if password:
        for form in {password, json.dumps(password)[1:-1], repr(password)[1:-1]}:
            message = message.replace(form, "***")
    return " ".join(message.replace("<br />", " ").split())[:200]


# What keystonemiddleware (auth_token) answers, with 503, when it cannot validate a client's
# token because Keystone did not answer it or answered an error (10.1 in Debian 12, 10.9 in
# Debian 13): the service behind it is fine, and restarting it would not bring Keystone back.
KEYSTONE_UNAVAILABLE_TO_MIDDLEWARE = "The Keystone service is temporarily unavailable"


class Token(Record):
    """A project-scoped token: its value (``X-Subject-Token``) and the project's id."""

    __slots__ = ("value", "project_id")
    value: str
    project_id: str

    def __init__(self, value: str, project_id: str) -> None:
        self._freeze(locals())


def issue_token(credentials: Credentials, timeout: float) -> str:
    """A token for ``credentials`` (the ``X-Subject-Token`` of ``POST /v3/auth/tokens``); see
    :func:`issue_project_token`."""
    return issue_project_token(credentials, timeout).value


def issue_project_token(credentials: Credentials, timeout: float) -> Token:
    """A token for ``credentials`` (the ``X-Subject-Token`` of ``POST /v3/auth/tokens``) and
    the id of the project it is scoped to (the answer's ``token.project.id``).

    Raises :class:`CredentialsError` when Keystone refuses the user (401),
    :class:`~stackha.http_client.NotReachable` when nothing answers (another
    :class:`~stackha.http_client.HttpError` for an answer that is not HTTP),
    :class:`OpenStackApiError` naming the status for any other answer.
    """
    url = token_url(credentials.auth_url)
    answer = http_client.send_json("POST", url, token_request_body(credentials), timeout)
    if answer.status == 401:
        raise CredentialsError(
            f"keystone refused user {credentials.username} "
            f"(domain {credentials.user_domain_name}, project {credentials.project_name})"
        )
    shown = http_client.shown_url(url)
    if answer.status != 201:
        detail = _answer_message(answer.body, credentials.password)
        raise OpenStackApiError(
            f"POST {shown} answered {http_client.status_text(answer.status)}"
            + (f": {detail}" if detail else "")
        )
    token = answer.headers.get("x-subject-token", "")
    if not token:
        raise OpenStackApiError(f"POST {shown} answered 201 without an X-Subject-Token header")
    return Token(token, _project_id(answer.body))


def _project_id(body: str) -> str:
    """``token.project.id`` of Keystone's answer, or "" (a service that needs it says so)."""
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    token = data.get("token") if isinstance(data, dict) else None
    project = token.get("project") if isinstance(token, dict) else None
    found = project.get("id") if isinstance(project, dict) else None
    return found if isinstance(found, str) else ""


class KeystoneUnavailable(OpenStackApiError):
    """No token could be had from Keystone for a service's deep check, or the service could not
    have it validated: the fault is Keystone's (or the path to it), not the service's."""


def with_auth_url(credentials: Credentials, auth_url: str) -> Credentials:
    return Credentials(
        auth_url=auth_url,
        username=credentials.username,
        password=credentials.password,
        project_name=credentials.project_name,
        user_domain_name=credentials.user_domain_name,
        project_domain_name=credentials.project_domain_name,
    )


def check_authenticated(
    service: ApiService, url: str, credentials: Credentials, waits: Waits
) -> None:
    """The deep check of the service at ``url`` (this node's endpoint).

    keystone: a token issued by this node (``POST url/v3/auth/tokens``), which reaches the
    database and the Fernet keys. Others: a token from the credentials' ``auth_url`` (usually
    the VIP), then ``GET url`` + the service's authenticated path with it, which passes the
    service's keystonemiddleware. The requests share ``waits`` (the monitor's budget): the
    second gets what the first left.

    Raises :class:`CredentialsError` when Keystone refuses the user, :class:`KeystoneUnavailable`
    when a non-keystone service cannot get a token or its keystonemiddleware says it could not
    validate the token with Keystone (a 503 of its own words),
    :class:`~stackha.http_client.HttpError` (:class:`~stackha.http_client.NotReachable`: no
    answer) or :class:`OpenStackApiError` (naming the HTTP status and the service's message)
    when the service itself fails.
    """
    if service.authenticated_path is None:
        own = with_auth_url(credentials, f"{url}/v3")
        waits.timed("POST /v3/auth/tokens", lambda timeout: issue_token(own, timeout))
        return
    try:
        token = waits.timed(
            f"POST {http_client.shown_url(token_url(credentials.auth_url))}",
            lambda timeout: issue_project_token(credentials, timeout),
        )
    except CredentialsError:
        raise
    except (OpenStackApiError, http_client.HttpError) as err:
        raise KeystoneUnavailable(f"no token from keystone: {err}") from None
    path = service.authenticated_path
    if "{project_id}" in path:
        if not token.project_id:
            raise KeystoneUnavailable("keystone's token names no project id")
        path = path.replace("{project_id}", token.project_id)
    # the path as the record writes it: a project id in a log line says nothing
    request = f"GET {service.authenticated_path} with a token"
    headers = {
        **dict(service.authenticated_headers),
        "X-Auth-Token": token.value,
        "Accept": "application/json",
    }
    answer = waits.timed(
        f"GET {service.authenticated_path}",
        lambda timeout: http_client.get(f"{url}{path}", timeout, headers),
    )
    if answer.status == 200:
        return
    detail = _answer_message(answer.body)
    answered = f"{request} answered {http_client.status_text(answer.status)}" + (
        f": {detail}" if detail else ""
    )
    if answer.status == 503 and KEYSTONE_UNAVAILABLE_TO_MIDDLEWARE in answer.body:
        raise KeystoneUnavailable(f"{service.name} could not validate the token: {answered}")
    raise OpenStackApiError(answered)
