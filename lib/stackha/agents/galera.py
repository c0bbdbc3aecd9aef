"""ocf:stackha:galera — MariaDB Galera as a promotable clone: Promoted is "in the Primary
Component, Synced and serving"; Unpromoted is "mariadbd stopped, position reported".

OCF glue only; what Galera means is in stackha.services.galera. How the instances agree:

- start (and every Unpromoted monitor, and every post-notification) reports this node's last
  committed position as node attributes — from grastate.dat, or from ``mariadbd
  --wsrep-recover`` after a crash — and then decides this node's own promotion score: 100 when
  a live Primary Component exists to join, or when the election (the same pure function on
  every node, over the same attributes) names this node to bootstrap; none otherwise. No node
  ever sets another node's score, so there is nothing to race.
- A node's position attribute is removed while its mariadbd runs (its position moves on), so
  an election never counts a stale position: it waits until the node has stopped and
  reported again.
- start also reports the installed MariaDB version (``mariadbd --version``), and promote
  refuses to run beside members of a release series MariaDB does not support in one Galera
  cluster with this one (10.11 with 11.8: the rolling upgrade must go through 11.4); Galera
  itself shows no peer's MariaDB version (wsrep_provider_version is the Galera library's).
- promote starts mariadbd, with its recovered position, to bootstrap or to join, and returns
  when it is Synced in the Primary Component — or fails with a reason when the state transfer
  cannot finish inside the promote timeout or the component it was joining went away.
"""

from __future__ import annotations

import os

from stackha import __version__
from stackha.ocf.agent import Agent, Call
from stackha.ocf.node_attributes import local_node, node_attributes, under_pacemaker
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import (
    FailedPromoted,
    GenericError,
    NotConfigured,
    NotInstalled,
    NotRunning,
    OcfStatus,
)
from stackha.process import (
    ProcessError,
    ProcTable,
    find_instance,
    is_alive,
    running_pid,
    stop_process,
)
from stackha.services import galera

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from typing import Optional

    from stackha.ocf.node_attributes import NodeAttributes

PROMOTION_SCORE = 100
STOP_RESERVE_S = 10.0  # kept back from promote's budget to stop a mariadbd that did not make it
PEER_CHECK_INTERVAL_S = 2.0
POLL_S = 0.5

SPEC = AgentSpec(
    name="galera",
    version=__version__,
    shortdesc="MariaDB Galera cluster (promotable clone: Promoted = in the Primary Component)",
    longdesc=(
        "Manages MariaDB with the Galera provider as a promotable clone, one instance per "
        "node listed in wsrep_cluster_address. An Unpromoted instance has mariadbd stopped and "
        "its last committed position reported as the node attributes <resource>-position and "
        "<resource>-safe-to-bootstrap, its MariaDB version as <resource>-version (crm_mon -A "
        "shows them); a Promoted instance is a member "
        "of the Primary Component, Synced and serving. After any failure, the whole cluster "
        "included, the node with the most advanced state bootstraps a new Primary Component "
        "(a node marked safe_to_bootstrap first; otherwise once every member has reported, "
        "or, with bootstrap_with_quorum, once a quorum has and every silent member is known "
        "to be fenced; equal positions go to the first in wsrep_cluster_address) and the "
        "others join it. A node never starts after a crash without its recovered position, "
        "nor beside members two MariaDB release series away (10.11 and 11.8). Works with "
        "MariaDB 10.11 and 11.8 (Debian 12 and 13). "
        "Credentials for the SQL checks come from a client option file or the client's own "
        "configuration, never from a command line. Use notify=true on the clone so that "
        "elections run as soon as peers report."
    ),
    parameters=(
        Parameter(
            "wsrep_cluster_address",
            "Galera cluster address",
            "gcomm:// address listing every member, e.g. gcomm://node1,node2,node3. Each "
            "member is a Pacemaker node name (or mapped to one by cluster_host_map); names "
            "are matched exactly.",
            required=True,
        ),
        Parameter(
            "cluster_host_map",
            "Pacemaker node names to Galera member names",
            "node:member pairs separated by ';', for members the address names differently "
            "from Pacemaker (e.g. node1:10.0.0.11;node2:10.0.0.12). Empty: the same names.",
            default="",
        ),
        Parameter(
            "binary", "mariadbd binary", "Full path of mariadbd.", default="/usr/sbin/mariadbd"
        ),
        Parameter(
            "client_binary",
            "MariaDB client",
            "Full path of the mariadb client used for the SQL checks.",
            default="/usr/bin/mariadb",
        ),
        Parameter(
            "config",
            "MariaDB configuration file",
            "Given to mariadbd as --defaults-file.",
            default="/etc/mysql/my.cnf",
        ),
        Parameter("datadir", "Data directory", "mariadbd's datadir.", default="/var/lib/mysql"),
        Parameter("user", "User mariadbd runs as", "Owner of the datadir.", default="mysql"),
        Parameter(
            "socket",
            "mariadbd UNIX socket",
            "Where mariadbd listens locally; the SQL checks use it.",
            default="/run/mysqld/mysqld.sock",
            unique_group="socket",
        ),
        Parameter(
            "pid", "mariadbd pid file", "Written by mariadbd.", default="/run/mysqld/mysqld.pid"
        ),
        Parameter(
            "log",
            "mariadbd error log",
            "mariadbd's --log-error.",
            default="/var/log/mysql/error.log",
        ),
        Parameter(
            "wsrep_provider",
            "Galera library",
            "Full path of the Galera provider library (Debian: package galera-4).",
            default="/usr/lib/galera/libgalera_smm.so",
        ),
        Parameter(
            "check_credentials",
            "Client option file for the SQL checks",
            "A MariaDB client option file ([client] user=..., password=...) readable by root, "
            "for the status checks over the local socket. Empty: the client's own "
            "configuration (on Debian, root over the socket needs no password).",
            default="",
        ),
        Parameter(
            "bootstrap_with_quorum",
            "Bootstrap without every member's report",
            "When true, the election may choose a bootstrap node once more than half of the "
            "members have reported and every member that has not is known to Pacemaker as "
            "cleanly down (fenced or left). Off by default: the most advanced node may be among "
            "the silent ones. Needed for two-node clusters to recover with one node (with "
            "fencing).",
            type="boolean",
            default=False,
        ),
        Parameter(
            "additional_parameters",
            "More mariadbd options",
            "Extra options for mariadbd, split like a shell would (no shell runs them).",
            default="",
        ),
    ),
    actions=(
        Action("start", timeout=120),
        Action("stop", timeout=120),
        Action("promote", timeout=300),
        Action("demote", timeout=120),
        Action("monitor", timeout=30, interval=10, depth=0, role="Promoted"),
        Action("monitor", timeout=30, interval=20, depth=0, role="Unpromoted"),
        Action("notify", timeout=30),
        Action("meta-data", timeout=5),
        Action("validate-all", timeout=30),
    ),
    example=(
        "pcs resource create galera ocf:stackha:galera "
        "wsrep_cluster_address=gcomm://node1,node2,node3 "
        "promotable promoted-max=3 notify=true"
    ),
)

PROCESSES = ProcTable()


class Names:
    """The node attributes of one resource."""

    def __init__(self, resource: str) -> None:
        self.position = f"{resource}-position"
        self.safe = f"{resource}-safe-to-bootstrap"
        self.primary = f"{resource}-primary"
        self.version = f"{resource}-version"


class Cluster:
    """What this node knows of the Galera cluster: members, names, attributes."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.address = str(call.config.wsrep_cluster_address)
        try:
            self.members = galera.cluster_members(self.address)
            self.host_map = galera.parse_host_map(str(call.config.cluster_host_map or ""))
        except galera.GaleraError as err:
            raise NotConfigured(str(err)) from err
        self.node = local_node(call.context)
        self.member = self.host_map.get(self.node, self.node)
        self.names = Names(call.context.resource_name)
        self.attributes: NodeAttributes = node_attributes(call.context, call.runner)

    def member_of(self, node: str) -> str:
        return self.host_map.get(node, node)

    # -- this node's report -----------------------------------------------------------------

    def report(self, uuid: str, seqno: int, safe: bool) -> None:
        self.attributes.set(self.names.position, galera.position_text(uuid, seqno))
        self.attributes.set(self.names.safe, "1" if safe else "0")

    def withdraw_report(self) -> None:
        self.attributes.delete(self.names.position)
        self.attributes.delete(self.names.safe)

    def reported(self) -> bool:
        return self.node in self.attributes.everywhere(self.names.position)

    # -- the others -------------------------------------------------------------------------

    def reports(self) -> dict[str, galera.Report]:
        positions = self.attributes.everywhere(self.names.position)
        safe = self.attributes.everywhere(self.names.safe)
        reports = {}
        for node, text in positions.items():
            member = self.member_of(node)
            if member not in self.members:
                continue
            try:
                uuid, seqno = galera.parse_position(text)
            except galera.GaleraError as err:
                self.call.log.warning(f"ignoring {node}'s report: {err}")
                continue
            reports[member] = galera.Report(seqno, safe.get(node) == "1", uuid)
        return reports

    def live_primary_peers(self) -> list[str]:
        """Peers that say they are in the Primary Component and whose Galera port answers.

        The attribute alone can be stale for up to a monitor interval after a peer's mariadbd
        died (resource-agents' agent trusted it, and a node then tried to join dead peers for
        the whole promote timeout); a dead mariadbd's port refuses at once.
        """
        endpoints = galera.member_endpoints(self.address)
        live = []
        for node in sorted(self.attributes.everywhere(self.names.primary)):
            member = self.member_of(node)
            if node == self.node or member not in endpoints:
                continue
            if galera.galera_port_open(member, endpoints[member], timeout=1.0):
                live.append(node)
        return live

    def cleanly_down_members(self) -> list[str]:
        """Members Pacemaker knows to be down cleanly (fenced, or left the cluster)."""
        if not under_pacemaker(self.call.context):
            # Run by hand (ocf-tester): no cluster has fenced or removed anyone, and there is
            # no crm_mon to ask (it failed the start with CommandError).
            return []
        from stackha.pacemaker import crm_mon
        from stackha.runner import CommandError

        try:
            status = crm_mon.status(
                self.call.runner, timeout=min(15.0, self.call.deadline.remaining())
            )
        except CommandError as err:
            raise GenericError(f"cannot read the cluster's state: {err}") from err
        return [
            self.member_of(node.name)
            for node in status.nodes
            if not node.online and not node.unclean
        ]

    def elect(self) -> galera.Election:
        reports = self.reports()
        allow = bool(self.call.config.bootstrap_with_quorum)
        missing = [m for m in self.members if m not in reports]
        fenced = self.cleanly_down_members() if allow and missing else []
        try:
            return galera.elect_bootstrap(self.members, reports, fenced, allow_quorum=allow)
        except galera.GaleraError as err:
            raise GenericError(str(err)) from err

    # -- decisions --------------------------------------------------------------------------

    def set_score(self, wanted: Optional[int]) -> None:
        current = self.attributes.promotion_score()
        if current == wanted:
            return
        if wanted is None:
            self.attributes.delete_promotion_score()
        else:
            self.attributes.set_promotion_score(wanted)

    def decide_promotion(self) -> str:
        """Set this node's own promotion score from what the cluster says; returns why."""
        peers = self.live_primary_peers()
        if peers:
            self.set_score(PROMOTION_SCORE)
            return f"joining the Primary Component on {', '.join(peers)}"
        election = self.elect()
        if election.bootstrap == self.member:
            self.set_score(PROMOTION_SCORE)
            return f"bootstrapping a new Primary Component: {election.reason}"
        self.set_score(None)
        if election.bootstrap:
            return f"waiting for {election.bootstrap} to bootstrap: {election.reason}"
        return f"{election.reason}: {', '.join(election.waiting_for)}"


# -- the local mariadbd ----------------------------------------------------------------------


def _pid(call: Call) -> Optional[int]:
    return running_pid(PROCESSES, str(call.config.pid), "mariadbd")


def leftovers(call: Call, stop: bool) -> list[int]:
    """This instance's mariadbd when stop or a probe cannot use the configuration: found by
    its pid file or by the --datadir this agent starts it with (stackha.ocf.agent)."""
    return _stopped(call) if stop else _instance(call)


def _status(call: Call, timeout: Optional[float] = None) -> galera.WsrepStatus:
    """mariadbd's wsrep status within ``timeout`` seconds (a poll's share), or, by default,
    within the call's budget: a mariadbd slow under load is logged, not failed."""
    credentials = str(call.config.check_credentials or "") or None
    socket = str(call.config.socket)

    def query(seconds: float) -> galera.WsrepStatus:
        return galera.query_status(
            call.runner, str(call.config.client_binary), socket, credentials, timeout=seconds
        )

    try:
        if timeout is None:
            return call.check_budget().timed(f"the SQL status query on {socket}", query)
        return query(max(1.0, min(timeout, call.deadline.remaining())))
    except galera.CredentialsError as err:
        raise NotConfigured(str(err)) from err


def _position(call: Call) -> tuple[galera.Report, Optional[galera.GraState]]:
    """The stopped datadir's position (recovered when grastate.dat cannot tell), and
    grastate.dat as it is (None when there is none)."""
    datadir = str(call.config.datadir)
    try:
        state = galera.read_grastate(datadir)
    except galera.GaleraError as err:
        raise GenericError(f"{datadir}/grastate.dat: {err}") from err
    if state is not None and not state.needs_recovery:
        return galera.Report(state.seqno, state.safe_to_bootstrap, state.uuid), state
    _prepare_dirs(call)
    try:
        uuid, seqno = galera.recover_position(
            call.runner,
            str(call.config.binary),
            str(call.config.config),
            datadir,
            str(call.config.user),
            str(call.config.wsrep_provider),
            str(call.config.wsrep_cluster_address),
            str(call.config.socket),
            timeout=max(5.0, call.deadline.remaining() - 5.0),
        )
    except galera.GaleraError as err:
        raise GenericError(str(err)) from err
    call.log.info(
        f"recovered position {uuid}:{seqno} with --wsrep-recover "
        f"({'grastate.dat says -1' if state else 'no grastate.dat'})"
    )
    # safe_to_bootstrap with seqno -1 cannot be trusted (resource-agents PR #1323)
    return galera.Report(seqno, False, uuid), state


def _prepare_dirs(call: Call) -> None:
    import pwd

    account = pwd.getpwnam(str(call.config.user))
    for path in (str(call.config.pid), str(call.config.socket), str(call.config.log)):
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
            os.chown(directory, account.pw_uid, account.pw_gid)


def _stopped(call: Call) -> list[int]:
    """Stop this instance's mariadbd if it runs — the one its pid file names, and any other
    started on its data directory (a pid file can be wrong) —; raise (never mask) if it will
    not stop. Returns the pids it stopped."""
    found = _instance(call)
    for pid in found:
        call.log.info(f"stopping mariadbd (pid {pid})")
        stop_process(PROCESSES, pid, call.deadline, what="mariadbd")
    return found


def _instance(call: Call) -> list[int]:
    """This instance's mariadbd processes: by its pid file, or by the --datadir this agent
    starts it with."""
    return find_instance(
        PROCESSES, str(call.config.pid), "mariadbd", [f"--datadir={call.config.datadir}"]
    )


def _report_stopped_position(call: Call, cluster: Cluster) -> galera.Report:
    position, _ = _position(call)
    cluster.report(position.uuid, position.seqno, position.safe_to_bootstrap)
    return position


def _installed_version(call: Call) -> str:
    """This node's mariadbd version; GaleraError when it cannot tell."""
    timeout = max(1.0, min(10.0, call.deadline.remaining() / 4))
    return galera.installed_version(call.runner, str(call.config.binary), timeout)


def _report_version(call: Call, cluster: Cluster) -> None:
    """Say which MariaDB this node runs, for the peers' promote to compare (Galera shows no
    member's MariaDB version). Not knowing it is logged, never a failed start."""
    try:
        version = _installed_version(call)
    except galera.GaleraError as err:
        call.log.warning(f"cannot tell the MariaDB version: {err}")
        cluster.attributes.delete(cluster.names.version)
        return
    cluster.attributes.set(cluster.names.version, version)


def _refuse_mixed_versions(call: Call, cluster: Cluster) -> None:
    """Raise when a member reported a MariaDB release series MariaDB does not support in one
    Galera cluster with this node's (see galera.version_mismatch)."""
    try:
        own = _installed_version(call)
    except galera.GaleraError as err:
        call.log.warning(f"cannot tell the MariaDB version, not compared with peers: {err}")
        return
    peers = {
        node: version
        for node, version in cluster.attributes.everywhere(cluster.names.version).items()
        if node != cluster.node and cluster.member_of(node) in cluster.members
    }
    problem = galera.version_mismatch(own, peers)
    if problem:
        raise GenericError(problem)
    older = sorted(n for n, v in peers.items() if galera.series(v) != galera.series(own))
    if older:
        call.log.warning(
            f"MariaDB {galera.series(own)} here, "
            + ", ".join(f"{n} {galera.series(peers[n])}" for n in older)
            + ": a rolling upgrade must join by IST; a state snapshot (SST) from a newer donor "
            "to an older node is a downgrade MariaDB does not support"
        )


# -- actions ---------------------------------------------------------------------------------


def validate(call: Call) -> None:
    cluster = Cluster(call)
    if cluster.member not in cluster.members:
        raise NotInstalled(
            f"node {cluster.node} (member name {cluster.member}) is not in "
            f"wsrep_cluster_address {cluster.address} (names are matched exactly)"
        )
    call.require_binary(str(call.config.binary))
    call.require_binary(str(call.config.client_binary))
    provider = str(call.config.wsrep_provider)
    if not os.path.isfile(provider):
        raise NotInstalled(f"Galera library {provider} is not installed (Debian: galera-4)")
    config = str(call.config.config)
    if not os.path.isfile(config):
        raise NotInstalled(f"config file {config} does not exist")
    datadir = str(call.config.datadir)
    if not os.path.isdir(datadir):
        raise NotInstalled(f"datadir {datadir} does not exist")
    if not os.path.isdir(f"{datadir}/mysql"):
        raise NotInstalled(
            f"datadir {datadir} is not initialised (no {datadir}/mysql): run "
            f"mariadb-install-db --user={call.config.user} --datadir={datadir}"
        )
    import pwd

    try:
        pwd.getpwnam(str(call.config.user))
    except KeyError:
        raise NotInstalled(f"user {call.config.user} does not exist") from None
    credentials = str(call.config.check_credentials or "")
    if credentials and not os.access(credentials, os.R_OK):
        raise NotInstalled(f"check_credentials file {credentials} is missing or unreadable")
    if call.context.action in ("start", "promote") and under_pacemaker(call.context):
        if not call.context.is_promotable:
            raise NotConfigured(
                "galera must run as a promotable clone (pcs: promotable promoted-max=N)"
            )


def start(call: Call) -> int:
    cluster = Cluster(call)
    pid = _pid(call)
    if pid is not None:
        raise GenericError(
            f"mariadbd is already running (pid {pid}) outside the cluster's control; stop it "
            "and let the cluster start it"
        )
    cluster.attributes.delete(cluster.names.primary)
    position = _report_stopped_position(call, cluster)
    _report_version(call, cluster)
    why = cluster.decide_promotion()
    call.log.info(
        f"reported position {position.uuid}:{position.seqno} "
        f"(safe_to_bootstrap {int(position.safe_to_bootstrap)}); {why}"
    )
    return OcfStatus.SUCCESS


def stop(call: Call) -> int:
    cluster = Cluster(call)
    _stopped(call)
    cluster.attributes.delete(cluster.names.primary)
    cluster.set_score(None)
    # Stopped is not Unpromoted: with a report left behind, a probe would find the instance
    # "running" where Pacemaker stopped it.
    cluster.withdraw_report()
    cluster.attributes.delete(cluster.names.version)  # the package may change while stopped
    return OcfStatus.SUCCESS


def monitor(call: Call) -> int:
    pid = _pid(call)
    role = call.context.meta.get("role", "")
    promoted_role = role in ("Promoted", "Master")
    if pid is None:
        if promoted_role:
            raise NotRunning("mariadbd is not running")
        cluster = Cluster(call)
        if not cluster.reported():
            return OcfStatus.NOT_RUNNING  # stopped: Unpromoted is "stopped and reported"
        if not call.context.is_probe:
            call.log.debug(cluster.decide_promotion())  # the election, when nothing notifies
        return OcfStatus.SUCCESS
    if role in ("Unpromoted", "Slave"):
        raise GenericError(f"mariadbd is running (pid {pid}) but this instance is Unpromoted")
    try:
        status = _status(call)
    except galera.GaleraError as err:
        raise FailedPromoted(str(err)) from err
    if not status.serving:
        raise FailedPromoted(f"not in the Primary Component: {status.describe()}")
    if call.context.is_probe:
        # found running after a restart of Pacemaker: say so to the peers again
        cluster = Cluster(call)
        cluster.attributes.set(cluster.names.primary, status.uuid)
        cluster.set_score(PROMOTION_SCORE)
    return OcfStatus.RUNNING_PROMOTED


def _wait_primary(
    call: Call, cluster: Cluster, pid: int, joining: bool, log_offset: int
) -> galera.WsrepStatus:
    """Until mariadbd is Synced in the Primary Component; progress logged on each change."""
    deadline = call.deadline.sub(STOP_RESERVE_S)
    started = call.clock.monotonic()
    last = ""
    next_peer_check = started + PEER_CHECK_INTERVAL_S
    mode = "join" if joining else "bootstrap"
    while True:
        if not is_alive(PROCESSES, pid):
            error = galera.last_error(str(call.config.log), log_offset)
            raise GenericError(f"mariadbd exited during {mode}: {error or 'see its error log'}")
        try:
            status: Optional[galera.WsrepStatus] = _status(call, timeout=5.0)
        except galera.NotReachable:
            status = None
        text = (
            status.describe()
            if status
            else "no SQL yet (initialising, or receiving a state transfer)"
        )
        if text != last:
            elapsed = call.clock.monotonic() - started
            call.log.info(f"{mode}: {text} after {elapsed:.1f}s")
            last = text
        if status is not None and status.serving and status.state == galera.SYNCED:
            return status
        now = call.clock.monotonic()
        if joining and now >= next_peer_check:
            next_peer_check = now + PEER_CHECK_INTERVAL_S
            if (status is None or not status.primary) and not cluster.live_primary_peers():
                raise GenericError("the Primary Component this node was joining is gone")
        if deadline.expired():
            raise GenericError(
                f"{mode} did not finish within {deadline.seconds:.0f}s of the promote "
                f"timeout: {text}"
            )
        deadline.sleep(POLL_S)


def promote(call: Call) -> int:
    cluster = Cluster(call)
    if _pid(call) is not None:
        try:
            status = _status(call, timeout=10.0)
        except galera.GaleraError as err:
            raise GenericError(f"mariadbd already runs but does not answer: {err}") from err
        if status.serving:
            cluster.attributes.set(cluster.names.primary, status.uuid)
            return OcfStatus.SUCCESS
        raise GenericError(
            f"mariadbd already runs outside the Primary Component: {status.describe()}"
        )
    position, state = _position(call)
    peers = cluster.live_primary_peers()
    joining = bool(peers)
    if not joining:
        election = cluster.elect()
        if election.bootstrap != cluster.member:
            cluster.set_score(None)
            waiting = f" ({', '.join(election.waiting_for)})" if election.waiting_for else ""
            raise GenericError(
                f"no Primary Component to join, and this node is not the one to bootstrap: "
                f"{election.reason}{waiting}"
            )
        if state is not None and not state.safe_to_bootstrap:
            call.log.warning(
                f"marking {call.config.datadir}/grastate.dat safe_to_bootstrap: {election.reason}"
            )
            galera.mark_safe_to_bootstrap(str(call.config.datadir))
    _refuse_mixed_versions(call, cluster)
    _prepare_dirs(call)
    # The position is about to move on: an election must not count the old one.
    cluster.withdraw_report()
    # Recovered positions must be given back: grastate.dat says -1 (or nothing). A fresh
    # datadir's recovered -1 is no position at all.
    recovered = state is None or state.needs_recovery
    start_position = (
        galera.position_text(position.uuid, position.seqno)
        if recovered and position.seqno >= 0
        else None
    )
    extra: tuple[str, ...] = ()
    if call.config.additional_parameters:
        import shlex

        extra = tuple(shlex.split(str(call.config.additional_parameters)))
    argv = galera.mariadbd_argv(
        str(call.config.binary),
        str(call.config.config),
        str(call.config.datadir),
        str(call.config.user),
        str(call.config.pid),
        str(call.config.socket),
        str(call.config.log),
        str(call.config.wsrep_provider),
        cluster.address,
        new_cluster=not joining,
        start_position=start_position,
        extra=extra,
    )
    log_offset = (
        os.path.getsize(str(call.config.log)) if os.path.exists(str(call.config.log)) else 0
    )
    pid = galera.start_mariadbd(call.runner, argv)
    call.log.info(
        f"{'joining ' + ', '.join(peers) if joining else 'bootstrapping'} from "
        f"{position.uuid}:{position.seqno} (mariadbd pid {pid})"
    )
    try:
        status = _wait_primary(call, cluster, pid, joining, log_offset)
    except BaseException as err:
        try:
            if is_alive(PROCESSES, pid):
                stop_process(PROCESSES, pid, call.deadline, what="mariadbd")
        except ProcessError as stop_err:
            raise GenericError(f"{err}; and then {stop_err}") from err
        finally:
            try:
                _report_stopped_position(call, cluster)
            except GenericError:
                pass
        raise
    cluster.attributes.set(cluster.names.primary, status.uuid)
    call.log.info(f"promoted: {status.describe()}")
    return OcfStatus.SUCCESS


def demote(call: Call) -> int:
    cluster = Cluster(call)
    cluster.attributes.delete(cluster.names.primary)
    _stopped(call)
    cluster.set_score(None)
    _report_stopped_position(call, cluster)
    return OcfStatus.SUCCESS


def notify(call: Call) -> int:
    data = call.context.notify
    if data is None or data.type != "post" or _pid(call) is not None:
        return OcfStatus.SUCCESS
    cluster = Cluster(call)
    if cluster.reported():
        call.log.info(
            f"after {data.operation} of {' '.join(data.unames(data.operation)) or 'a peer'}: "
            f"{cluster.decide_promotion()}"
        )
    return OcfStatus.SUCCESS


AGENT = Agent(
    spec=SPEC,
    handlers={
        "start": start,
        "stop": stop,
        "monitor": monitor,
        "promote": promote,
        "demote": demote,
        "notify": notify,
    },
    validate=validate,
    leftovers=leftovers,
)
