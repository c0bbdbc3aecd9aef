"""What stackha knows about MariaDB Galera, with no OCF in it: a node's last committed
position, the cluster's members, and which node must bootstrap a new Primary Component.

The rules (resource-agents' galera agent, with its known defects fixed):

- A node's position comes from ``grastate.dat``; when its seqno is -1 (a crash), only
  ``mariadbd --wsrep-recover`` can tell, and a node never starts without it.
- Members are the names in ``wsrep_cluster_address``, matched exactly (``node1`` is not
  ``node10``, which a substring match takes it for).
- The bootstrap node is the one whose state is the most advanced: a node marked
  ``safe_to_bootstrap`` (the last to leave cleanly) first; otherwise, once every member has
  reported — or, when the operator allows it, once a quorum has and every silent member is known
  to be fenced — the highest seqno. Equal positions are broken by the order of
  ``wsrep_cluster_address``, so every node computes the same answer.
"""

from __future__ import annotations

import os
import re

from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import Optional

    from stackha.runner import Result, Runner

NIL_UUID = "00000000-0000-0000-0000-000000000000"
UNKNOWN_SEQNO = -1
# The one line of ``mariadbd --wsrep-recover``'s log that holds the answer, in 10.11 and 11.8
# alike: "<date> <time> 0 [Note] WSREP: Recovered position: <uuid>:<seqno>", with
# ",<domain>-<server>-<seqno>" after it when wsrep_gtid_mode is on. Not the first line of the
# log (11.8 starts with "Starting MariaDB 11.8.9-MariaDB..." and InnoDB's notes), and not a
# normal start's "WSREP: Recovered position from storage: ...", which this does not match.
RECOVERED = re.compile(r"\bWSREP: Recovered position:\s+([0-9a-f-]{36}):(-?\d+)")
# What an upstream MariaDB 11.x program started by its old name (mysql, mysqladmin, mysqld...)
# prints on stderr before anything else: "mysql: Deprecated program name. It will be removed
# in a future release, use '/usr/bin/mariadb' instead". Debian 13 patches the notice out
# (mariadb 1:11.4.2-2); MariaDB's own packages print it. Never a reason, never an answer.
DEPRECATED_NAME = "Deprecated program name"
# mariadbd --version on stdout: "/usr/sbin/mariadbd  Ver 11.8.9-MariaDB-0+deb13u1 from Debian
# ..." (10.11: "Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu ...").
VERSION = re.compile(r"\bVer\s+(\d+)\.(\d+)\.(\d+)-MariaDB")
# The release series MariaDB documents rolling upgrades of a Galera cluster between, one step
# at a time (10.6 -> 10.11 -> 11.4 -> 11.8 -> 12.3): "Galera guarantees mixed-version
# replication only between adjacent major releases" (docs/upgrade.md has the sources).
GALERA_SERIES = ("10.3", "10.4", "10.5", "10.6", "10.11", "11.4", "11.8", "12.3")
GALERA_PORT = 4567
# wsrep_local_state: what the node is doing in its component (Galera's own numbering).
JOINING, DONOR, JOINED, SYNCED = 1, 2, 3, 4
STATE_NAMES = {0: "Undefined", 1: "Joining", 2: "Donor/Desynced", 3: "Joined", 4: "Synced"}
STATUS_VARIABLES = (
    "wsrep_ready",
    "wsrep_cluster_status",
    "wsrep_local_state",
    "wsrep_local_state_comment",
    "wsrep_cluster_size",
    "wsrep_cluster_state_uuid",
    "wsrep_last_committed",
)
STATUS_QUERY = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN ("
    + ", ".join(f"'{name}'" for name in STATUS_VARIABLES)
    + ")"
)


class GaleraError(Exception):
    """A Galera state that must not be acted on; the message says why."""


class CredentialsError(GaleraError):
    """The SQL check was refused: the credentials are wrong."""


class NotReachable(GaleraError):
    """mariadbd does not answer on its socket (yet)."""


def client_error(result: Result) -> str:
    """Why a MariaDB program failed, in its own words: the last line of stderr that is not the
    11.x deprecated-name notice (else of stdout), or its exit status when it said nothing."""
    for text in (result.stderr, result.stdout):
        lines = [
            line.strip()
            for line in text.splitlines()
            if line.strip() and DEPRECATED_NAME not in line
        ]
        if lines:
            return lines[-1]
    return f"exit status {result.returncode}"


def _server_error(text: str) -> str:
    """The last ``[ERROR]`` of mariadbd's log text, without its time stamp; or ''."""
    errors = [line for line in text.splitlines() if "[ERROR]" in line]
    return errors[-1].split("[ERROR]", 1)[1].strip() if errors else ""


class GraState(Record):
    """The contents of ``grastate.dat``."""

    __slots__ = ("uuid", "seqno", "safe_to_bootstrap")
    uuid: str
    seqno: int
    safe_to_bootstrap: bool

    def __init__(self, uuid: str, seqno: int, safe_to_bootstrap: bool) -> None:
        self._freeze(locals())

    @property
    def needs_recovery(self) -> bool:
        """seqno -1: the node did not stop cleanly; its position must be recovered."""
        return self.seqno == UNKNOWN_SEQNO


def parse_grastate(text: str) -> GraState:
    """Parse ``grastate.dat``; raises GaleraError when a field is missing or malformed."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[key.strip()] = value.strip()
    try:
        uuid = fields["uuid"]
        seqno = int(fields["seqno"])
    except (KeyError, ValueError):
        raise GaleraError("grastate.dat has no valid uuid and seqno") from None
    return GraState(uuid, seqno, fields.get("safe_to_bootstrap", "0") == "1")


def read_grastate(datadir: str) -> Optional[GraState]:
    """The node's grastate, or None when the file does not exist (a node never started)."""
    try:
        with open(f"{datadir}/grastate.dat", encoding="utf-8", errors="replace") as handle:
            return parse_grastate(handle.read())
    except FileNotFoundError:
        return None


def position_text(uuid: str, seqno: int) -> str:
    return f"{uuid}:{seqno}"


def parse_position(text: str) -> tuple[str, int]:
    """``uuid:seqno`` as Galera and the node attribute write it."""
    uuid, sep, seqno = text.rpartition(":")
    try:
        if not sep or len(uuid) != len(NIL_UUID):
            raise ValueError(text)
        return uuid, int(seqno)
    except ValueError:
        raise GaleraError(f"{text!r} is not a Galera position (uuid:seqno)") from None


def mark_safe_to_bootstrap(datadir: str) -> None:
    """Set ``safe_to_bootstrap: 1`` in grastate.dat, changing nothing else.

    Galera's own recovery procedure, for the node the election found the most advanced after
    every member crashed (no node left last cleanly, so none is marked). Written to a new file
    renamed over the old one, owner and mode kept, so a crash leaves either file whole and no
    stray copy behind (resource-agents' ``sed -ie`` leaves ``grastate.date``).
    """
    path = f"{datadir}/grastate.dat"
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    parse_grastate("\n".join(lines))  # only ever rewrite a file that parses
    out = [
        "safe_to_bootstrap: 1" if line.split(":", 1)[0].strip() == "safe_to_bootstrap" else line
        for line in lines
    ]
    if "safe_to_bootstrap: 1" not in out:
        out.append("safe_to_bootstrap: 1")
    info = os.stat(path)
    temporary = f"{path}.stackha-new"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, info.st_mode & 0o777)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("\n".join(out) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(temporary, info.st_uid, info.st_gid)
        os.chmod(temporary, info.st_mode & 0o777)  # os.open's mode went through the umask
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory = os.open(datadir, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def parse_recovered_position(log: str) -> tuple[str, int]:
    """(uuid, seqno) from ``mariadbd --wsrep-recover``'s log; the last report wins."""
    found = RECOVERED.findall(log)
    if not found:
        raise GaleraError("mariadbd --wsrep-recover reported no position")
    uuid, seqno = found[-1]
    return uuid, int(seqno)


def cluster_members(address: str) -> list[str]:
    """Node names of ``gcomm://a,b:4567,c?opt=1``: exact names, ports and options removed."""
    if not address.startswith("gcomm://"):
        raise GaleraError(f"wsrep_cluster_address {address!r} is not a gcomm:// address")
    hosts = address[len("gcomm://") :].split("?", 1)[0]
    members = []
    for host in hosts.split(","):
        host = host.strip()
        if host.startswith("["):  # [ipv6]:port
            host = host[1:].split("]", 1)[0]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if host:
            members.append(host)
    return members


def is_member(node: str, address: str) -> bool:
    return node in cluster_members(address)


def member_endpoints(address: str) -> dict[str, int]:
    """Each member's Galera (gcomm) port: the one in the address, else 4567."""
    endpoints = {}
    for member, host in zip(cluster_members(address), _hosts(address)):
        port = GALERA_PORT
        tail = host.rsplit("]", 1)[-1] if host.startswith("[") else host
        if tail.count(":") == 1 and tail.rsplit(":", 1)[1].isdigit():
            port = int(tail.rsplit(":", 1)[1])
        endpoints[member] = port
    return endpoints


def _hosts(address: str) -> list[str]:
    hosts = address[len("gcomm://") :].split("?", 1)[0]
    return [host.strip() for host in hosts.split(",") if host.strip()]


def parse_host_map(text: str) -> dict[str, str]:
    """``pcmk1:galera1;pcmk2:galera2`` → {Pacemaker node name: name in wsrep_cluster_address}."""
    mapping = {}
    for entry in text.replace(",", ";").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        node, sep, member = entry.partition(":")
        if not sep or not node.strip() or not member.strip():
            raise GaleraError(f"cluster_host_map entry {entry!r} is not node:name")
        mapping[node.strip()] = member.strip()
    return mapping


class WsrepStatus(Record):
    """What a running mariadbd says about its place in the cluster."""

    __slots__ = ("ready", "cluster_status", "state", "comment", "size", "uuid", "last_committed")
    ready: bool
    cluster_status: str
    state: int
    comment: str
    size: int
    uuid: str
    last_committed: int

    def __init__(
        self,
        ready: bool,
        cluster_status: str,
        state: int,
        comment: str,
        size: int,
        uuid: str,
        last_committed: int,
    ) -> None:
        self._freeze(locals())

    @property
    def primary(self) -> bool:
        return self.cluster_status == "Primary"

    @property
    def serving(self) -> bool:
        """In the Primary Component and serving: Synced, or a donor or just joined."""
        return self.ready and self.primary and self.state in (DONOR, JOINED, SYNCED)

    @property
    def takes_writes(self) -> bool:
        """Serving and Synced: what the agent's promote waits for, and what the one node that
        OpenStack writes to must be (a donor is busy with a state transfer, blocked for the
        whole of an rsync one; a joined node is still applying what it missed)."""
        return self.serving and self.state == SYNCED

    def describe(self) -> str:
        return (
            f"cluster status {self.cluster_status}, state {self.comment or self.state}, "
            f"{self.size} member{'s' if self.size != 1 else ''}, "
            f"wsrep_ready {'ON' if self.ready else 'OFF'}"
        )


def parse_status(text: str) -> WsrepStatus:
    """``mariadb -N -B`` output of :data:`STATUS_QUERY` (name TAB value lines)."""
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            values[name.strip().lower()] = value.strip()
    if "wsrep_ready" not in values:
        raise GaleraError("mariadbd reports no wsrep status: is the Galera provider loaded?")

    def number(name: str) -> int:
        try:
            return int(values.get(name, "") or 0)
        except ValueError:
            return 0

    return WsrepStatus(
        ready=values.get("wsrep_ready", "").upper() == "ON",
        cluster_status=values.get("wsrep_cluster_status", ""),
        state=number("wsrep_local_state"),
        comment=values.get("wsrep_local_state_comment", ""),
        size=number("wsrep_cluster_size"),
        uuid=values.get("wsrep_cluster_state_uuid", ""),
        last_committed=number("wsrep_last_committed"),
    )


def _ask_status(
    runner: Runner,
    client: str,
    credentials: Optional[str],
    where: list[str],
    timeout: float,
    silent: str,
) -> Result:
    """Run :data:`STATUS_QUERY` with the client against the server ``where`` names; its
    result, or :class:`NotReachable` (``silent`` and the wait) when it does not answer in time."""
    from stackha.runner import CommandTimedOut

    argv = [client]
    if credentials:
        argv.append(f"--defaults-extra-file={credentials}")  # must come first
    argv += [
        *where,
        f"--connect-timeout={max(1, int(timeout))}",
        "--batch",
        "--skip-column-names",
        "--execute",
        STATUS_QUERY,
    ]
    try:
        return runner.run(argv, timeout=timeout)
    except CommandTimedOut:
        # a mariadbd that accepts and never answers (a stuck server, a node swapping)
        raise NotReachable(f"{silent} within {timeout:.1f} s") from None


def query_status(
    runner: Runner,
    client: str,
    socket: str,
    credentials: Optional[str],
    timeout: float,
) -> WsrepStatus:
    """Ask the local mariadbd over its UNIX socket, within ``timeout`` seconds. Credentials come
    from ``credentials`` (a client option file) or the client's own configuration — never from
    the command line. Raises :class:`NotReachable` when it does not answer in time."""
    result = _ask_status(
        runner,
        client,
        credentials,
        [f"--socket={socket}"],
        timeout,
        f"mariadbd did not answer on {socket}",
    )
    if not result.ok:
        line = client_error(result)
        if "Access denied" in line:
            source = f"credentials from {credentials}" if credentials else "the client config"
            raise CredentialsError(f"mariadbd refused the SQL check ({source}): {line}")
        raise NotReachable(f"mariadbd does not answer on {socket}: {line}")
    return parse_status(result.stdout)


def query_status_at(
    runner: Runner,
    client: str,
    host: str,
    port: int,
    credentials: str,
    timeout: float,
) -> WsrepStatus:
    """Ask the mariadbd at ``host:port`` over TCP, as HAProxy's health check of a database
    server does (see stackha.galera_check): :data:`STATUS_QUERY`, the one the agent asks its
    local mariadbd, with the credentials of the client option file ``credentials`` (never on
    the command line). Raises :class:`CredentialsError` when they are refused,
    :class:`NotReachable` when nothing answers within ``timeout`` seconds."""
    where = [f"--host={host}", f"--port={port}", "--protocol=TCP"]
    silent = f"mariadbd at {host}:{port} did not answer"
    result = _ask_status(runner, client, credentials, where, timeout, silent)
    if not result.ok:
        line = client_error(result)
        if "Access denied" in line:
            raise CredentialsError(f"mariadbd at {host}:{port} refused {credentials}: {line}")
        if "TLS/SSL error" in line:
            # The MariaDB 11.4+ client wants TLS and verifies the server's certificate by
            # default (11.x servers make one; 10.11 servers offer no TLS unless configured).
            raise NotReachable(
                f"mariadbd at {host}:{port}: {line} (a MariaDB 11.4 or newer client verifies "
                f"the server's TLS certificate by default; for a 10.x server, configure "
                f"ssl-ca or ssl-verify-server-cert=off in {credentials}: docs/upgrade.md)"
            )
        raise NotReachable(f"mariadbd at {host}:{port} does not answer: {line}")
    return parse_status(result.stdout)


def mariadbd_argv(
    binary: str,
    config: str,
    datadir: str,
    user: str,
    pidfile: str,
    socket: str,
    log: str,
    provider: str,
    cluster_address: str,
    *,
    new_cluster: bool = False,
    start_position: Optional[str] = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command line that starts mariadbd in the cluster (or bootstraps a new one)."""
    argv = [
        binary,
        f"--defaults-file={config}",  # mariadbd reads it only as the first option
        f"--user={user}",
        f"--datadir={datadir}",
        f"--pid-file={pidfile}",
        f"--socket={socket}",
        f"--log-error={log}",
        "--wsrep-on=ON",
        f"--wsrep-provider={provider}",
        f"--wsrep-cluster-address={cluster_address}",
    ]
    if start_position:
        # After a crash grastate.dat says -1: without this, Galera forgets the position.
        argv.append(f"--wsrep-start-position={start_position}")
    if new_cluster:
        argv.append("--wsrep-new-cluster")
    argv.extend(extra)
    return argv


def start_mariadbd(runner: Runner, argv: Sequence[str]) -> int:
    """Start mariadbd with ``argv`` (:func:`mariadbd_argv`), to outlive the call; its pid. It
    writes its own output to its --log-error file (:func:`last_error` reads it)."""
    from stackha.runner import Spawn

    return runner.spawn(Spawn(argv=tuple(argv)))


def recover_position(
    runner: Runner,
    binary: str,
    config: str,
    datadir: str,
    user: str,
    provider: str,
    cluster_address: str,
    socket: str,
    timeout: float,
) -> tuple[str, int]:
    """``mariadbd --wsrep-recover``: the last committed position InnoDB holds.

        Its report goes to the error log, so a private log file is used and removed afterwards.
        mariadbd checks its wsrep settings before recovering (rsync SST wants a cluster address),
        so it gets the same provider and address as a real start; it connects nowhere, but binds its
    socket before it reports (the socket's directory must exist).
    """
    import pwd
    import tempfile

    descriptor, log = tempfile.mkstemp(prefix="wsrep-recover.", suffix=".log", dir=datadir)
    os.close(descriptor)
    try:
        account = pwd.getpwnam(user)
        os.chown(log, account.pw_uid, account.pw_gid)
        result = runner.run(
            [
                binary,
                f"--defaults-file={config}",
                f"--user={user}",
                f"--datadir={datadir}",
                f"--log-error={log}",
                "--wsrep-on=ON",
                f"--wsrep-provider={provider}",
                f"--wsrep-cluster-address={cluster_address}",
                "--skip-networking",
                f"--socket={socket}",
                f"--pid-file={log}.pid",
                "--wsrep-recover",
            ],
            timeout=timeout,
        )
        with open(log, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    finally:
        for path in (log, f"{log}.pid"):
            if os.path.exists(path):
                os.unlink(path)
    try:
        return parse_recovered_position(text)
    except GaleraError:
        # mariadbd's own [ERROR], from its log or its stderr; never a note or warning it put
        # on stderr (11.8: "[Note] slave_connections_needed_for_purge changed to 0 because of
        # Galera..." is its last stderr line on every run) nor the deprecated-name notice.
        detail = _server_error(text) or _server_error(result.stderr) or f"exit {result.returncode}"
        raise GaleraError(
            f"mariadbd --wsrep-recover found no position in {datadir}: {detail}"
        ) from None


def last_error(log: str, since: int = 0) -> str:
    """The last ``[ERROR]`` line mariadbd wrote to ``log`` after byte ``since``, or ''."""
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            handle.seek(since)
            text = handle.read()
    except OSError:
        return ""
    return _server_error(text)


def parse_version(text: str) -> str:
    """``11.8.9`` from ``mariadbd --version``'s stdout; raises GaleraError when absent."""
    found = VERSION.search(text)
    if not found:
        raise GaleraError(f"not a MariaDB version: {text.strip()[:120]!r}")
    return ".".join(found.groups())


def installed_version(runner: Runner, binary: str, timeout: float) -> str:
    """The version of the installed mariadbd (``11.8.9``). The answer is read from stdout
    only: stderr can carry the deprecated-name notice or a start-up warning."""
    from stackha.runner import CommandError

    try:
        result = runner.run([binary, "--version"], timeout=timeout)
    except CommandError as err:
        raise GaleraError(f"{binary} --version: {err}") from err
    if not result.ok:
        raise GaleraError(f"{binary} --version failed: {client_error(result)}")
    return parse_version(result.stdout)


def series(version: str) -> str:
    """``11.8`` of ``11.8.9``."""
    return ".".join(version.split(".")[:2])


def version_mismatch(own: str, peers: Mapping[str, str]) -> str:
    """Why this node must not run in one Galera cluster with the peers whose MariaDB versions
    ``peers`` maps ({node: version}), or '' when it may. Refused: release series more than
    one step apart in :data:`GALERA_SERIES` (10.11 with 11.8 skips 11.4). A series missing
    from it (a short-term release, a future one) is not judged."""
    mine = series(own)
    if mine not in GALERA_SERIES:
        return ""
    far = sorted(
        node
        for node, version in peers.items()
        if series(version) in GALERA_SERIES
        and abs(GALERA_SERIES.index(series(version)) - GALERA_SERIES.index(mine)) > 1
    )
    if not far:
        return ""
    by_series: dict[str, list[str]] = {}
    for node in far:
        by_series.setdefault(series(peers[node]), []).append(node)
    theirs = " and ".join(f"{s} on {', '.join(nodes)}" for s, nodes in sorted(by_series.items()))
    # The versions first: Pacemaker keeps the first 128 characters of an exit reason. No "->":
    # crm_mon showed it as "-&gt;" (the CIB keeps XML's escape of ">").
    return (
        f"MariaDB {mine} here, {theirs}: Galera mixes only adjacent release series "
        f"({', '.join(GALERA_SERIES[-4:])}); upgrade the rest first, or every node with the "
        "cluster stopped (docs/upgrade.md)"
    )


class Report(Record):
    """What a node reported for the election (as node attributes)."""

    __slots__ = ("seqno", "safe_to_bootstrap", "uuid")
    seqno: int
    safe_to_bootstrap: bool
    uuid: str

    def __init__(self, seqno: int, safe_to_bootstrap: bool = False, uuid: str = "") -> None:
        self._freeze(locals())


class Election(Record):
    """The outcome: a bootstrap node and why, or the members still awaited."""

    __slots__ = ("bootstrap", "reason", "waiting_for")
    bootstrap: Optional[str]
    reason: str
    waiting_for: tuple[str, ...]

    def __init__(
        self, bootstrap: Optional[str], reason: str, waiting_for: tuple[str, ...] = ()
    ) -> None:
        self._freeze(locals())


def elect_bootstrap(
    members: Sequence[str],
    reports: Mapping[str, Report],
    fenced: Collection[str] = (),
    allow_quorum: bool = False,
) -> Election:
    """Which member must bootstrap the new Primary Component, if any can yet.

    ``members`` in wsrep_cluster_address order (the tie-break); ``reports`` of the members
    that have reported; ``fenced``: silent members Pacemaker has fenced. With
    ``allow_quorum``, a quorum of reports suffices when every silent member is fenced.
    Raises GaleraError when reports belong to different cluster histories.
    """
    known = {m: reports[m] for m in members if m in reports}
    histories = {r.uuid for r in known.values() if r.uuid and r.uuid != NIL_UUID}
    if len(histories) > 1:
        raise GaleraError(
            "members report different cluster UUIDs ("
            + ", ".join(f"{m}={r.uuid}" for m, r in known.items() if r.uuid)
            + "): refusing to choose between histories"
        )
    if any(r.seqno == UNKNOWN_SEQNO for r in known.values() if r.uuid != NIL_UUID):
        unrecovered = [m for m, r in known.items() if r.seqno == UNKNOWN_SEQNO]
        return Election(None, "waiting for recovered positions", tuple(unrecovered))
    safe = [m for m in members if m in known and known[m].safe_to_bootstrap]
    if safe:
        return Election(safe[0], f"{safe[0]} is marked safe_to_bootstrap (it left last)")
    missing = tuple(m for m in members if m not in known)
    if missing:
        # Two nodes can have no majority of one; Pacemaker's two_node quorum and fencing stand
        # in for it (the silent node must be known down cleanly, checked below).
        quorum = len(known) > len(members) // 2 or (len(members) == 2 and len(known) == 1)
        if not (allow_quorum and quorum and set(missing) <= set(fenced)):
            return Election(None, "waiting for every member to report", missing)
    best = max(known[m].seqno for m in known)
    winner = next(m for m in members if m in known and known[m].seqno == best)
    others = [m for m in known if m != winner and known[m].seqno == best]
    tie = f"; tied with {', '.join(others)}, first in wsrep_cluster_address wins" if others else ""
    return Election(winner, f"{winner} has the highest seqno {best}{tie}")


def galera_port_open(host: str, port: int, timeout: float) -> bool:
    """Whether something accepts connections on a member's Galera port (a live mariadbd)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
