"""ocf:stackha:rabbitmq — one RabbitMQ cluster kept whole by a clone, one broker per node,
without ever wiping a node's data.

OCF glue only; what RabbitMQ means is in stackha.services.rabbitmq. How the instances agree:

- A started instance publishes its Erlang node name as the node attribute ``<rsc>-node``;
  those are the running peers a starting node joins.
- A node with no data joins a running peer (``join_cluster``, which resets only the empty new
  node). With no peer running, the first online Pacemaker node forms the cluster and the
  others wait for it: two fresh nodes forming clusters of their own could never merge.
- A node with data boots with it and RabbitMQ rejoins it to its cluster when a member runs.
- After an outage of every member (a site-wide power loss), no member runs, and a member
  booting alone waits for the others (Mnesia's rule) — for minutes, and for ever for one whose
  instance Pacemaker is not starting. So the starting instances agree on one to boot first:
  each publishes a claim (``<rsc>-boot``: waiting, or first), the same pure function over the
  claims names the one (the last member down if it is starting, else the first by name, once
  the others starting with it had time to say so), it takes the first boot, checks that no one
  took it before it, and boots — with ``force_boot`` unless its data is the newest. The others
  boot alongside it once it has taken the first boot (Mnesia loads its tables from it) and
  rejoin it with their data. Whatever order and timing
  Pacemaker starts the instances in, one boots and the rest follow; nothing is wiped.
  Under Khepri (RabbitMQ 4.x's Raft store) none of this: every member boots with its data and
  a majority elects a leader; Khepri has no force_boot.
- Only an explicit decision removes a node from the cluster: the operator removed the node
  from Pacemaker, or (``forget_fenced_nodes``) Pacemaker fenced it. A node the cluster forgot
  moves its old data aside — renamed, never deleted — and joins afresh.
- Monitor asks the management API (one HTTP request, about 5 ms), never ``rabbitmqctl eval``.
"""

from __future__ import annotations

import os

from stackha import __version__
from stackha.ocf.agent import Agent, Call
from stackha.ocf.node_attributes import local_node, node_attributes, under_pacemaker
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import GenericError, NotConfigured, NotInstalled, NotRunning, OcfStatus
from stackha.process import (
    ProcessError,
    ProcTable,
    find_instance,
    remove_stale_pidfile,
    running_pid,
    stop_all,
    stop_process,
)
from stackha.services import rabbitmq

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from typing import Callable, Optional

    from stackha.ocf.node_attributes import NodeAttributes
    from stackha.pacemaker.crm_mon import ClusterStatus

POLL_S = 1.0
FORMER_GRACE_S = 20.0  # how long a fresh node waits for the first online node to form
# After an outage of every member: how long an instance that would boot first waits for other
# instances starting with it to publish their claims (Pacemaker starts a clone's instances in
# one transition, but they reach attrd a few seconds apart on a loaded node) ...
BOOT_SETTLE_S = 10.0
MAX_HALF_JOINS = 2  # joins that failed after join_cluster, each retried afresh (see _join)
# ... how long it waits after taking the first boot before it trusts that no one else took it
# (attrd spreads an update to every node well within this) ...
BOOT_COMMIT_S = 2.0
# ... and what a waiting instance keeps of its start budget to boot once the first one runs.
BOOT_BUDGET_S = 60.0
API_TIMEOUT_S = 5.0
STOP_TIMEOUT_RESERVE_S = 5.0
# How often a broker rejoining running members with its data checks, while Mnesia waits for
# them, that they still run: when every one went away (a crash during the recovery) Mnesia
# would wait for them past the start's budget, so the boot is given up and decided again.
BOOT_CHECK_S = 15.0
# users and policies are JSON: a policy's definition nests three or four levels, a list of
# users a few kilobytes.
JSON_MAX_CHARS = 65536
JSON_MAX_DEPTH = 16

SPEC = AgentSpec(
    name="rabbitmq",
    version=__version__,
    shortdesc="RabbitMQ cluster, one broker per node (clone)",
    longdesc=(
        "Manages one RabbitMQ broker per node as a clone and keeps them one cluster. A node "
        "without data joins a running member; with no member running, the first online node "
        "forms the cluster. A node that comes back after a failure boots with its data and "
        "rejoins: no data is ever wiped. A node is removed from the cluster only when it is "
        "removed from Pacemaker's configuration or, with forget_fenced_nodes, after Pacemaker "
        "has fenced it. The partition handling is applied (pause_minority from three "
        "instances on) and monitor reports a paused, partitioned or minority node as failed. "
        "Monitor uses the management API with a monitoring user the agent keeps (credentials "
        "from a file); users, vhosts and policies are parameters applied once the cluster is "
        "formed. Use notify=true on the clone (for forget_fenced_nodes) and interleave=true."
    ),
    parameters=(
        Parameter(
            "nodename",
            "Erlang node name",
            "This node's RabbitMQ node name. Empty: rabbit@<Pacemaker node name, short>. "
            "Its host part must resolve on every node.",
            default="",
        ),
        Parameter(
            "server",
            "rabbitmq-server script",
            "The server's start script (not Debian's su wrapper in /usr/sbin).",
            default=rabbitmq.SERVER,
        ),
        Parameter("ctl", "rabbitmqctl", "The rabbitmqctl script.", default=rabbitmq.CTL),
        Parameter(
            "diagnostics",
            "rabbitmq-diagnostics",
            "Used by monitor only when the management API does not answer.",
            default=rabbitmq.DIAGNOSTICS,
        ),
        Parameter("user", "User the broker runs as", "Owner of the data.", default="rabbitmq"),
        Parameter(
            "home",
            "Home of the broker's user",
            "Where the Erlang cookie (.erlang.cookie) is. Empty: the user's home directory.",
            default="",
        ),
        Parameter("pid_file", "Pid file", "Written by the broker.", default="/run/rabbitmq/pid"),
        Parameter("log_dir", "Log directory", "RABBITMQ_LOG_BASE.", default="/var/log/rabbitmq"),
        Parameter(
            "mnesia_base",
            "Data directory base",
            "RABBITMQ_MNESIA_BASE; the node's data is in <mnesia_base>/<nodename>.",
            default="/var/lib/rabbitmq/mnesia",
        ),
        Parameter(
            "config_file",
            "rabbitmq.conf",
            "RABBITMQ_CONFIG_FILE. Empty: RabbitMQ's default (/etc/rabbitmq/rabbitmq.conf).",
            default="",
        ),
        Parameter(
            "env_file",
            "rabbitmq-env.conf",
            "RABBITMQ_CONF_ENV_FILE. Empty: RabbitMQ's default (/etc/rabbitmq/rabbitmq-env.conf).",
            default="",
        ),
        Parameter(
            "partition_handling",
            "Partition handling",
            "cluster_partition_handling to run with: auto (pause_minority from three clone "
            "instances on, autoheal for two), pause_minority, autoheal, ignore, or config "
            "(leave rabbitmq.conf's setting). Mnesia only: nothing is passed under Khepri "
            "(RabbitMQ 4.3, or data with khepri_db enabled), where a minority changes nothing "
            "by itself; autoheal and ignore are refused there.",
            type="select",
            default="auto",
            choices=("auto", "pause_minority", "autoheal", "ignore", "config"),
        ),
        Parameter(
            "monitor_credentials",
            "Monitoring user's credentials file",
            "A file with username= and password= lines, readable by root. The agent creates "
            "this user with the monitoring tag when the cluster forms; monitor uses it for the "
            "management API.",
            default="/etc/rabbitmq/stackha-monitor.credentials",
        ),
        Parameter(
            "management_address",
            "Management API address",
            "Where this node's management API listens.",
            default="127.0.0.1",
        ),
        Parameter(
            "management_port",
            "Management API port",
            "management.tcp.port.",
            type="integer",
            default=15672,
            minimum=1,
            maximum=65535,
        ),
        Parameter(
            "vhosts",
            "Virtual hosts",
            "Virtual hosts to create, separated by spaces (/ always exists). From RabbitMQ "
            "3.10.8 on, a vhost the agent creates has quorum queues as its default queue type.",
            default="/",
        ),
        Parameter(
            "users",
            "Users",
            'A JSON list of users: [{"name": "openstack", "password_file": "/etc/rabbitmq/'
            'openstack.password", "tags": [], "permissions": {"/": [".*", ".*", ".*"]}}]. '
            "Created when missing; a password that no longer matches its file is changed. "
            "Passwords go to rabbitmqctl on stdin.",
            default="[]",
            max_length=JSON_MAX_CHARS,
            json_depth=JSON_MAX_DEPTH,
        ),
        Parameter(
            "policies",
            "Policies",
            'A JSON list of policies: [{"name": "...", "pattern": "...", "definition": {...}, '
            '"apply-to": "queues", "priority": 0, "vhost": "/"}]. Classic mirroring keys '
            "(ha-mode...) are refused where RabbitMQ no longer has them (4.0+): durable "
            "OpenStack queues should be quorum queues (oslo.messaging rabbit_quorum_queue).",
            default="[]",
            max_length=JSON_MAX_CHARS,
            json_depth=JSON_MAX_DEPTH,
        ),
        Parameter(
            "forget_fenced_nodes",
            "Forget fenced nodes",
            "When true, a node Pacemaker has fenced is removed from the RabbitMQ cluster (its "
            "queue replicas with it); when it comes back it moves its old data aside and joins "
            "afresh. Off by default: a fenced node rejoins with its data.",
            type="boolean",
            default=False,
        ),
    ),
    actions=(
        Action("start", timeout=180),
        Action("stop", timeout=120),
        Action("monitor", timeout=30, interval=10, depth=0),
        Action("monitor", timeout=30, interval=60, depth=10),
        Action("notify", timeout=60),
        Action("meta-data", timeout=5),
        Action("validate-all", timeout=30),
    ),
    example=("pcs resource create rabbitmq ocf:stackha:rabbitmq clone notify=true interleave=true"),
)

PROCESSES = ProcTable()


class Broker:
    """This node's broker: its name, its environment, and rabbitmqctl aimed at it."""

    def __init__(self, call: Call) -> None:
        self.call = call
        config = call.config
        self.pacemaker_node = local_node(call.context)
        self.name = str(config.nodename or "") or rabbitmq.node_name(
            self.pacemaker_node.split(".", 1)[0]
        )
        self.user = str(config.user)
        self.home = str(config.home or "") or _home_of(self.user)
        self.pid_file = str(config.pid_file)
        self.data = rabbitmq.data_dir(str(config.mnesia_base), self.name)
        # What this node runs and what its data uses, read from files (no Erlang VM): the
        # decisions that differ between Mnesia and Khepri are taken before anything boots.
        self.version = rabbitmq.server_version(str(config.server))
        self.flags_file = rabbitmq.feature_flags_file(str(config.mnesia_base), self.name)
        try:
            self.flags = rabbitmq.read_feature_flags(self.flags_file)
        except rabbitmq.RabbitError as err:
            call.log.warning(str(err))
            self.flags = None
        self.use_store(rabbitmq.metadata_store(self.version, self.flags))
        self.attribute = f"{call.context.resource_name}-node"
        self.half_joins = 0  # joins of this start that failed after join_cluster (see _join)
        # what a started instance runs, for a node that cannot ask it (see _peer_versions)
        self.version_attribute = f"{call.context.resource_name}-version"
        self.claim_attribute = f"{call.context.resource_name}-boot"
        self._attributes: Optional[NodeAttributes] = None

    def use_store(self, store: str) -> None:
        """The metadata store this node boots with (``""``: not known yet), and what follows
        from it: the partition handling passed to the server, and the environment."""
        config = self.call.config
        self.store = store
        self.partition_handling = rabbitmq.partition_handling_for(
            str(config.partition_handling), self.call.context.clone_max, store
        )
        self.env = rabbitmq.server_environment(
            self.name,
            self.home,
            self.pid_file,
            str(config.log_dir),
            str(config.mnesia_base),
            str(config.config_file or ""),
            str(config.env_file or ""),
            self.partition_handling,
        )

    @property
    def attributes(self) -> NodeAttributes:
        if self._attributes is None:
            self._attributes = node_attributes(self.call.context, self.call.runner)
        return self._attributes

    def pid(self) -> Optional[int]:
        return running_pid(PROCESSES, self.pid_file, "beam.smp")

    @property
    def ctl(self) -> rabbitmq.Rabbitmqctl:
        """rabbitmqctl with this broker's environment as it is now (see use_store)."""
        return rabbitmq.Rabbitmqctl(
            self.call.runner, str(self.call.config.ctl), self.env, self.call.deadline
        )

    # -- peers ------------------------------------------------------------------------------

    def running_peers(self) -> dict[str, str]:
        """{Pacemaker node: Erlang node} of the other started instances."""
        return {
            node: name
            for node, name in self.attributes.everywhere(self.attribute).items()
            if node != self.pacemaker_node and name and name != self.name
        }

    def published_versions(self) -> dict[str, tuple[int, int, int]]:
        """{Pacemaker node: RabbitMQ version} as the started instances published them."""
        found = {}
        for node, text in self.attributes.everywhere(self.version_attribute).items():
            try:
                found[node] = rabbitmq.parse_version(text)
            except rabbitmq.RabbitError:
                continue  # not one of ours: not judged
        return found

    def publish(self) -> None:
        # the version first: a peer that sees this node started can then tell what it runs
        self.attributes.set(self.version_attribute, rabbitmq.version_text(self.version))
        self.attributes.set(self.attribute, self.name)

    def withdraw(self) -> None:
        self.attributes.delete(self.attribute)
        self.attributes.delete(self.version_attribute)

    # -- boot claims after an outage of every member (see the module's docstring) -----------

    def claims(self) -> dict[str, rabbitmq.BootClaim]:
        """{Pacemaker node: claim} of the instances starting after an outage of every member."""
        claims = {}
        for node, value in self.attributes.everywhere(self.claim_attribute).items():
            claim = rabbitmq.parse_boot_claim(value)
            if claim is not None:
                claims[node] = claim
        return claims

    def claim(self, claim: rabbitmq.BootClaim) -> None:
        self.attributes.set(self.claim_attribute, claim.value())

    def withdraw_claim(self) -> None:
        self.attributes.delete(self.claim_attribute)


def _home_of(user: str) -> str:
    import pwd

    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        raise NotInstalled(f"user {user} does not exist") from None


def _cluster_view(call: Call) -> Optional[ClusterStatus]:
    """crm_mon's view of the cluster, or None outside Pacemaker."""
    if not under_pacemaker(call.context):
        return None
    from stackha.pacemaker import crm_mon
    from stackha.runner import CommandError

    try:
        return crm_mon.status(call.runner, timeout=min(15.0, call.deadline.remaining()))
    except CommandError as err:
        raise GenericError(f"cannot read the cluster's state: {err}") from err


def _pacemaker_node_of(member: str) -> str:
    return rabbitmq.host_of(member).split(".", 1)[0]


# -- validation ------------------------------------------------------------------------------


def validate(call: Call) -> None:
    config = call.config
    for binary in (str(config.server), str(config.ctl)):
        call.require_binary(binary)
    # Checked here even with home set: start chowns the broker's directories to this user
    # (validate-all said 0 and start then failed with KeyError).
    _home_of(str(config.user))
    broker = Broker(call)
    host = rabbitmq.host_of(broker.name)
    if "@" not in broker.name or not host:
        raise NotConfigured(f"nodename {broker.name} is not of the form name@host")
    import socket

    try:
        socket.getaddrinfo(host, None)
    except OSError:
        raise NotConfigured(
            f"the host of node name {broker.name} ({host}) does not resolve"
        ) from None
    cookie = os.path.join(broker.home, ".erlang.cookie")
    if not os.path.isfile(cookie):
        raise NotInstalled(f"Erlang cookie {cookie} does not exist")
    for option in ("config_file", "env_file"):
        path = str(getattr(config, option) or "")
        if path and not os.path.isfile(path):
            raise NotInstalled(f"{option} {path} does not exist")
    refusal = rabbitmq.partition_handling_refusal(
        str(config.partition_handling), broker.version, broker.store
    )
    if refusal:
        # 5, not 6: it is this node's installation (or data) that cannot, and in a rolling
        # upgrade the other nodes' instances keep running.
        raise NotInstalled(refusal)
    try:
        rabbitmq.read_credentials(str(config.monitor_credentials))
        rabbitmq.parse_policies(str(config.policies), broker.version)
        for user in rabbitmq.parse_users(str(config.users)):
            rabbitmq.read_password(user.password_file)
    except rabbitmq.CredentialsError as err:
        raise NotInstalled(str(err)) from err
    except rabbitmq.RabbitError as err:
        raise NotConfigured(str(err)) from err


# -- start -----------------------------------------------------------------------------------


def _prepare_dirs(call: Call, broker: Broker) -> None:
    """The broker will not boot without a writable log directory, and a fresh tmpfs /run has
    no directory for its pid file."""
    import pwd

    account = pwd.getpwnam(broker.user)
    for directory in (os.path.dirname(broker.pid_file), str(call.config.log_dir)):
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, mode=0o755)
            os.chown(directory, account.pw_uid, account.pw_gid)


class BootAbandoned(Exception):
    """A boot given up while it waited for members that went away; the message says why."""


def _boot(
    call: Call,
    broker: Broker,
    abandon: Optional[Callable[[], Optional[str]]] = None,
    again_if_it_exits: bool = False,
) -> int:
    """Start the broker and wait until RabbitMQ runs on it; the pid of its Erlang VM.

    ``abandon``, asked every BOOT_CHECK_S while the broker waits: a reason to give the boot up
    (the VM is stopped and BootAbandoned raised), or None to keep waiting.
    ``again_if_it_exits``: a VM that exits while BOOT_BUDGET_S of the start are left raises
    BootAbandoned, to be decided and booted again (a Khepri member waits for a Raft leader
    30 s at a time in 4.0, then exits)."""
    _prepare_dirs(call, broker)
    spawned = rabbitmq.start_server(
        call.runner,
        str(call.config.server),
        broker.user,
        broker.home,
        broker.env,
        str(call.config.log_dir),
    )
    call.log.info(f"booting {broker.name} (pid {spawned})")
    # `wait` returns once the pid file exists, the node answers, and RabbitMQ is running;
    # it fails at once when the VM exits (a bad cookie, a port in use).
    while True:
        remaining = max(5.0, call.deadline.remaining() - STOP_TIMEOUT_RESERVE_S - 5.0)
        chunk = remaining if abandon is None else min(remaining, BOOT_CHECK_S)
        failure: Optional[rabbitmq.RabbitError] = None
        try:
            rabbitmq.wait(broker.ctl, broker.pid_file, int(chunk))
        except rabbitmq.RabbitError as err:
            failure = err
        pid = broker.pid()
        if failure is None or pid is None or abandon is None or chunk >= remaining:
            break
        why = abandon()
        if why is not None:
            stop_process(PROCESSES, pid, call.deadline, what="the broker")
            raise BootAbandoned(why)
    if failure is not None:
        reason = failure
        log_hint = rabbitmq.boot_failure(str(call.config.log_dir), broker.name)
        if again_if_it_exits and pid is None and call.deadline.remaining() > BOOT_BUDGET_S:
            raise BootAbandoned(f"{broker.name} exited ({log_hint or reason})")
        if pid is not None:
            stop_process(PROCESSES, pid, call.deadline, what="the broker")
        raise GenericError(f"{broker.name} did not boot: {log_hint or reason}")
    if pid is None:
        raise GenericError(f"{broker.name} booted but its pid file {broker.pid_file} is empty")
    return pid


def _cookie_refused(broker: Broker, peer: str, err: Exception) -> NotInstalled:
    # This node's cookie file is what differs: a node-local problem (5), so Pacemaker keeps
    # the clone running elsewhere rather than stopping it everywhere (6).
    return NotInstalled(
        f"{peer} refused {broker.name}: the Erlang cookie in {broker.home}/.erlang.cookie "
        "differs from the cluster's"
    )


def _status_seen_by(broker: Broker, peers: dict[str, str]) -> Optional[rabbitmq.ClusterStatus]:
    """The running cluster's status (members, versions, store), asked of the first peer that
    answers (None when none does). A peer refusing this node's Erlang cookie ends the start
    here, before anything booted: a node booting with data would otherwise wait minutes for
    peers that refuse it."""
    for peer in sorted(peers.values()):
        try:
            return rabbitmq.cluster_status(broker.ctl, node=peer)
        except rabbitmq.CookieMismatch as err:
            raise _cookie_refused(broker, peer, err) from err
        except rabbitmq.RabbitError:
            continue
    return None


def _peer_versions(
    broker: Broker, peers: dict[str, str], status: Optional[rabbitmq.ClusterStatus]
) -> dict[str, tuple[int, int, int]]:
    """{Erlang node: RabbitMQ version} of the running members: what ``status`` (a running
    member's cluster_status) says, then, for the ``peers`` ({Pacemaker node: Erlang node}) it
    gives no version for (none answered, or the answer had none of theirs: in a lab of both
    releases 4.0.5's rabbitmqctl got none from the 3.10.8 members), the version they
    published."""
    versions = dict(sorted(status.versions.items())) if status is not None else {}
    unknown = {node: member for node, member in peers.items() if member not in versions}
    if unknown:
        published = broker.published_versions()
        for node, member in sorted(unknown.items()):
            if node in published:
                versions[member] = published[node]
    return versions


def _check_versions(broker: Broker, versions: dict[str, tuple[int, int, int]]) -> None:
    """Refuse, before anything boots, to join or rejoin running members (``versions``, see
    _peer_versions) whose RabbitMQ can never be in one cluster with this node's (3.10 and
    4.x, say): RabbitMQ would refuse the join deep in its log, or a node with data would wait
    for peers that never accept it."""
    for member, version in versions.items():
        if member == broker.name:
            continue  # a stale answer naming this node, which does not run
        refusal = rabbitmq.cluster_refusal(broker.name, broker.version, member, version)
        if refusal:
            raise NotInstalled(refusal)


def _refuse_data(broker: Broker) -> None:
    """Refuse, before anything boots, data this RabbitMQ cannot boot (see data_refusal)."""
    refusal = rabbitmq.data_refusal(broker.name, broker.version, broker.flags)
    if refusal:
        raise NotInstalled(refusal)


def _set_aside(call: Call, broker: Broker, why: str) -> None:
    """Move the node's data out of the way, keeping it: never deleted."""
    import time

    target = f"{broker.data}.set-aside-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    if os.path.exists(target):  # set aside twice within a second
        target = f"{target}-{int(call.clock.monotonic())}"
    os.rename(broker.data, target)
    call.log.warning(f"moved {broker.data} to {target}: {why}")


def _join(call: Call, broker: Broker, peers: dict[str, str]) -> str:
    """Join the first running peer that accepts; returns its name."""
    errors = []
    for node in sorted(peers):
        seed = peers[node]
        joined = False
        try:
            rabbitmq.stop_app(broker.ctl)
            rabbitmq.join_cluster(broker.ctl, seed)
            joined = True
            rabbitmq.start_app(broker.ctl)
            return seed
        except rabbitmq.CookieMismatch as err:
            raise _cookie_refused(broker, seed, err) from err
        except rabbitmq.RabbitError as err:
            if joined:
                _abandon_half_join(call, broker, seed, err)
            errors.append(str(err))
            try:
                rabbitmq.start_app(broker.ctl)  # serve again, alone, while trying the next peer
            except rabbitmq.RabbitError:
                pass  # the join's own error (above) is the one worth reporting
    raise GenericError(f"could not join any running member: {'; '.join(errors)}")


def _abandon_half_join(call: Call, broker: Broker, seed: str, err: Exception) -> None:
    """join_cluster was accepted but RabbitMQ could not start on the merged schema (Mnesia's
    "Failed to merge schema: combine_error" when two nodes join one seed at the same moment:
    seen with 3.10.8). Every later boot of that data fails the same way, so the node would stay
    out for good. Its data is only what this join made (the join path is for a node without
    data): the VM is stopped, the data set aside (kept, never deleted), the seed told to
    forget this node, and the start decided again from the beginning (BootAbandoned)."""
    broker.half_joins += 1
    if broker.half_joins > MAX_HALF_JOINS:
        raise GenericError(
            f"{broker.name} joined {seed} but could not start on the merged cluster "
            f"{broker.half_joins} times: {err}"
        )
    pid = broker.pid()
    if pid is not None:
        stop_process(PROCESSES, pid, call.deadline, what="the broker")
    if os.path.exists(broker.data):
        _set_aside(call, broker, f"its join of {seed} failed half-way ({err})")
    try:
        rabbitmq.forget_cluster_node(broker.ctl, broker.name, node=seed)
    except rabbitmq.RabbitError as failure:
        # not a member there after all, or the seed went away: nothing to undo
        call.log.info(f"forget_cluster_node on {seed}: {failure}")
    raise BootAbandoned(f"its join of {seed} failed half-way: data set aside, joining afresh")


def _former(call: Call, broker: Broker, waited: float) -> Optional[str]:
    """The Pacemaker node that forms a new cluster when no member runs: the first online node
    (by name); after FORMER_GRACE_S, the first where this clone is starting or started, in
    case the first online node cannot run it."""
    view = _cluster_view(call)
    if view is None:
        return broker.pacemaker_node
    online = sorted(n.name for n in view.nodes if n.online and not n.standby)
    if waited < FORMER_GRACE_S:
        return online[0] if online else None
    resource = call.context.resource_name
    running = sorted(
        node
        for r in view.instances(resource)
        if r.role in ("Starting", "Started")
        for node in r.nodes
    )
    return running[0] if running else broker.pacemaker_node


def _await_first_boot(call: Call, broker: Broker, membership: rabbitmq.Membership) -> str:
    """After an outage of every member: wait until this node may boot, and say how:
    ``force`` (it boots first with force_boot: its data is not known to be the newest),
    ``newest`` (it boots first, its data the newest), ``rejoin`` (a member runs again) or
    ``follow`` (another instance took the first boot: this one boots alongside it, and Mnesia
    loads from it once it is up — members that start within one wait window of each other is
    what RabbitMQ expects after such an outage).

    Raises GenericError, with what it waited for, when the wait would leave too little of the
    start's budget to boot."""
    me = rabbitmq.BootClaim("waiting", rabbitmq.is_last_down(broker.name, membership), broker.name)
    broker.claim(me)
    began = call.clock.monotonic()
    logged = ""
    while True:
        if broker.running_peers():
            return "rejoin"  # a member runs (booted first, or came back)
        claims = broker.claims()
        claims[broker.pacemaker_node] = me  # attrd may not show this node's own update yet
        first = rabbitmq.first_booter(list(claims.values()))
        assert first is not None  # this node's claim is there
        waited = call.clock.monotonic() - began
        if first.name == broker.name:
            everyone = set(membership.members) <= {c.name for c in claims.values()}
            if me.last_down or everyone or waited >= BOOT_SETTLE_S:
                if me.state == "first":  # still first after the others had time to see it
                    return "newest" if me.last_down else "force"
                me = rabbitmq.BootClaim("first", me.last_down, me.name)
                broker.claim(me)
                call.log.info(
                    f"no member of {', '.join(membership.members)} runs; booting first among "
                    f"{', '.join(sorted(c.name for c in claims.values()))} unless another "
                    "instance took it already"
                )
                call.deadline.sleep(BOOT_COMMIT_S)
                continue
        else:
            if me.state == "first":  # another took the first boot before this node did
                me = rabbitmq.BootClaim("waiting", me.last_down, me.name)
                broker.claim(me)
            if first.state == "first":
                call.log.info(f"{first.name} boots first: booting alongside it to rejoin it")
                return "follow"
            if logged != first.name:
                call.log.info(f"waiting for {first.name} to boot first, then rejoining it")
                logged = first.name
        if call.deadline.remaining() < BOOT_BUDGET_S:
            missing = [m for m in membership.members if m not in {c.name for c in claims.values()}]
            raise GenericError(
                f"no member of {', '.join(membership.members)} runs and {first.name} "
                f"{'did not boot' if first.name != broker.name else 'could not take the boot'}"
                f" within {waited:.0f} s (not starting: {', '.join(missing) or 'none'}); "
                "start RabbitMQ on one member (pcs resource cleanup), and the others follow"
            )
        call.deadline.sleep(POLL_S)


def start(call: Call) -> int:
    broker = Broker(call)
    if broker.pid() is not None:
        call.log.info(f"{broker.name} already runs")
        broker.publish()
        return OcfStatus.SUCCESS
    while True:
        try:
            return _start(call, broker)
        except BootAbandoned as err:
            call.log.warning(f"{broker.name}: boot given up: {err}; deciding again")


def _start(call: Call, broker: Broker) -> int:
    """One decision and one boot (see the module's docstring)."""
    peers = broker.running_peers()
    try:
        # Under Khepri, Mnesia's membership files are absent or stale: not read.
        membership = rabbitmq.read_membership(broker.data, mnesia=broker.store != rabbitmq.KHEPRI)
    except rabbitmq.RabbitError as err:
        _refuse_data(broker)  # the likelier reason it cannot be read, when it is one
        raise GenericError(str(err)) from err
    if membership is not None and peers:
        if membership.members and not set(peers.values()) & set(membership.members):
            # Data from another cluster: joining would reset it. The operator decides.
            raise GenericError(
                f"{broker.data} belongs to a cluster of {', '.join(membership.members)}, not "
                f"to the running members {', '.join(sorted(peers.values()))}; refusing to join "
                "(it would discard this node's data): move the data away to join afresh"
            )
    status = _status_seen_by(broker, peers) if peers else None
    # before this node's own data: "4.0.5 here, 3.10.8 there" is the reason an operator
    # needs in a rolling upgrade, not the feature flags 4.0 misses in 3.10's data
    _check_versions(broker, _peer_versions(broker, peers, status))
    _refuse_data(broker)
    if peers:
        if status is not None:
            if membership is None and status.khepri is not None and not broker.store:
                # a node without data takes the store of the cluster it joins
                broker.use_store(rabbitmq.KHEPRI if status.khepri else rabbitmq.MNESIA)
        members = status.members if status is not None else None
        if membership is not None and members is not None and broker.name not in members:
            # Under Khepri this is also what data of another cluster looks like (its
            # membership is not read): kept, renamed, never deleted.
            _set_aside(call, broker, f"the running cluster ({', '.join(members)}) forgot it")
            membership = None
    formed = False
    claimed = False  # this start published a boot claim, withdrawn once it is over
    mode = ""  # how it boots after an outage of every member (see _await_first_boot)
    if membership is None:
        waited_since = call.clock.monotonic()
        while not peers:
            former = _former(call, broker, call.clock.monotonic() - waited_since)
            if former == broker.pacemaker_node:
                formed = True
                break
            if call.deadline.remaining() < 60.0:
                raise GenericError(f"no running member to join; waiting for {former} to form")
            call.log.debug(f"waiting for {former} to form the cluster")
            call.deadline.sleep(POLL_S)
            peers = broker.running_peers()
    elif not peers and len(membership.members) > 1:
        claimed = True
        try:
            mode = _await_first_boot(call, broker, membership)
            peers = broker.running_peers()
            if mode == "force":
                call.log.warning(
                    f"booting first after an outage of every member of "
                    f"{', '.join(membership.members)}, without waiting for the others "
                    "(force_boot); they rejoin this node with their data"
                )
                rabbitmq.force_boot(broker.ctl)
        except rabbitmq.RabbitError as err:
            broker.withdraw_claim()
            raise GenericError(str(err)) from err
        except BaseException:
            broker.withdraw_claim()
            raise
    abandon = None
    if membership is not None and (peers or mode == "follow"):

        def abandon() -> Optional[str]:
            if broker.running_peers():
                return None
            if mode == "follow":
                if any(c.state == "first" for c in broker.claims().values()):
                    return None  # still booting first
                return "no member runs and none boots first any more"
            return f"every member it was rejoining ({', '.join(sorted(peers.values()))}) went away"

    # After an outage of every member under Khepri: no boot claims and no force_boot (which
    # Khepri does not have: 4.0 answers unsupported_with_khepri, and the force_load file it
    # leaves for a stopped node is read by Mnesia alone). Every member boots with its data,
    # and RabbitMQ waits for a majority of them to elect a Raft leader.
    khepri_alone = broker.store == rabbitmq.KHEPRI and membership is not None and not peers
    if khepri_alone:
        call.log.info(
            f"{broker.name} boots with its Khepri data; it runs once a majority of its "
            "members run (Raft)"
        )
    try:
        _boot(call, broker, abandon, again_if_it_exits=khepri_alone)
    # a boot that failed, or a broker that would not stop after it (ProcessError)
    except (GenericError, ProcessError) as err:
        if claimed:
            broker.withdraw_claim()
        if khepri_alone:
            raise GenericError(
                f"{err}; under Khepri a member boots only with a majority of its members: "
                "start RabbitMQ on the others (no force_boot exists for Khepri)"
            ) from err
        raise
    except BaseException:
        if claimed:
            broker.withdraw_claim()
        raise
    try:
        if membership is None and peers:
            seed = _join(call, broker, peers)
            call.log.info(f"{broker.name} joined {seed}")
        elif formed:
            call.log.info(f"{broker.name} formed a new cluster")
        else:
            call.log.info(f"{broker.name} rejoined its cluster with its data")
        broker.publish()
        if claimed:
            broker.withdraw_claim()  # it runs: the others see it as a running peer now
        _setup(call, broker, everything=formed or not peers)
        _forget_removed_nodes(call, broker)
    except BaseException:
        pid = broker.pid()
        if pid is not None:
            stop_process(PROCESSES, pid, call.deadline, what="the broker")
        broker.withdraw()
        if claimed:
            broker.withdraw_claim()
        raise
    return OcfStatus.SUCCESS


def _forget_removed_nodes(call: Call, broker: Broker) -> None:
    """Forget members whose node is no longer in Pacemaker's configuration (removed by the
    operator), when they are down. Only with default node names: the Pacemaker node of a
    member is the host part of its name."""
    if call.config.nodename:
        return
    view = _cluster_view(call)
    if view is None:
        return
    configured = {n.name.split(".", 1)[0] for n in view.nodes}
    try:
        status = rabbitmq.cluster_status(broker.ctl)
    except rabbitmq.RabbitError as err:
        call.log.warning(f"not checking for removed nodes: {err}")
        return
    for member in status.members:
        if _pacemaker_node_of(member) in configured or member in status.running:
            continue
        try:
            rabbitmq.forget_cluster_node(broker.ctl, member)
        except rabbitmq.RabbitError as error:
            call.log.warning(f"could not forget a removed node: {error}")
        else:
            call.log.warning(f"forgot {member}: its node is no longer in the Pacemaker cluster")


# -- users, vhosts, policies -----------------------------------------------------------------


def _setup(call: Call, broker: Broker, everything: bool) -> None:
    """The monitoring user always; vhosts, users and policies when this node formed or
    restarted the cluster (they are cluster-wide: once is enough)."""
    try:
        _ensure_monitor_user(call, broker)
        if not everything:
            return
        vhosts = [v for v in str(call.config.vhosts or "/").split() if v]
        rabbitmq.ensure_vhosts(broker.ctl, vhosts, broker.version)
        for user in rabbitmq.parse_users(str(call.config.users)):
            rabbitmq.ensure_user(broker.ctl, user, rabbitmq.read_password(user.password_file))
        wanted = rabbitmq.parse_policies(str(call.config.policies), broker.version)
        for policy in rabbitmq.ensure_policies(broker.ctl, wanted):
            call.log.info(f"policy {policy.name} set on vhost {policy.vhost}")
    except rabbitmq.PolicyRefused as err:
        raise NotConfigured(str(err)) from err
    except (rabbitmq.CookieMismatch, rabbitmq.CredentialsError) as err:
        raise NotInstalled(str(err)) from err
    except rabbitmq.RabbitError as err:
        raise GenericError(str(err)) from err


def _ensure_monitor_user(call: Call, broker: Broker) -> None:
    username, password = rabbitmq.read_credentials(str(call.config.monitor_credentials))
    try:
        _fetch_nodes(call, username, password, at_most_s=API_TIMEOUT_S)  # start: it may be starting
        return
    except rabbitmq.CredentialsError:
        pass
    except rabbitmq.RabbitError:
        pass  # the management API may still be starting: the user is made either way
    rabbitmq.ensure_user(broker.ctl, rabbitmq.User(username, "", ("monitoring",)), password)


# -- stop, monitor, notify -------------------------------------------------------------------


def stop(call: Call) -> int:
    broker = Broker(call)
    pid = broker.pid()
    if pid is not None:
        # SIGTERM is a clean shutdown for the Erlang VM (OTP 19.3+): no rabbitmqctl VM needed
        call.log.info(f"stopping {broker.name} (pid {pid})")
        stop_process(PROCESSES, pid, call.deadline, what="the broker")
    if leftovers(call, stop=True):  # a broker its pid file did not name
        call.log.warning(f"stopped a broker of {broker.home} that {broker.pid_file} did not name")
    remove_stale_pidfile(PROCESSES, broker.pid_file, "beam.smp")
    broker.withdraw()
    broker.withdraw_claim()  # a start that timed out waiting to boot left its claim
    return OcfStatus.SUCCESS


def leftovers(call: Call, stop: bool) -> list[int]:
    """The broker when stop or a probe cannot use the configuration (a user that does not
    exist, a bad name): found by its pid file or as the Erlang VM booting RabbitMQ
    (``-s rabbit boot``) with the broker's home (``-home``), when that is known
    (stackha.ocf.agent)."""
    home = str(call.config.home or "")
    if not home:
        try:
            home = _home_of(str(call.config.user))
        except (NotInstalled, ValueError):
            home = ""  # no way to tell this broker from another: the pid file alone
    marks = ["rabbit", "boot", home] if home else []
    found = find_instance(PROCESSES, str(call.config.pid_file), "beam.smp", marks)
    if stop:
        stop_all(PROCESSES, found, call.deadline, "the broker")
    return found


def _fetch_nodes(
    call: Call, username: str, password: str, at_most_s: Optional[float] = None
) -> dict[str, rabbitmq.NodeHealth]:
    # The call's budget (stackha.ocf.budget) less 10 s kept for _without_api: a management API
    # slow under load is logged, not failed.
    address, port = str(call.config.management_address), int(str(call.config.management_port))
    return call.check_budget(leave_s=10.0).timed(
        f"GET /api/nodes on {address}:{port}",
        lambda s: rabbitmq.fetch_nodes(address, port, username, password, min(s, at_most_s or s)),
    )


def monitor(call: Call) -> int:
    broker = Broker(call)
    pid = broker.pid()
    if pid is None:
        if os.path.exists(broker.pid_file) and not call.context.is_probe:
            raise NotRunning(f"the broker of {broker.name} died (pid file {broker.pid_file})")
        return OcfStatus.NOT_RUNNING
    try:
        username, password = rabbitmq.read_credentials(str(call.config.monitor_credentials))
    except rabbitmq.CredentialsError as err:
        raise NotInstalled(str(err)) from err
    try:
        nodes = _fetch_nodes(call, username, password)
    except rabbitmq.CredentialsError as err:
        # this node's credentials file (5: Pacemaker stops this instance, not the clone)
        raise NotInstalled(str(err)) from err
    except rabbitmq.RabbitError as err:
        return _without_api(call, broker, err)
    deep = call.context.check_level >= 10
    published: list[str] = []
    if deep or rabbitmq.in_minority(nodes):  # the attributes only when they decide something
        published = list(broker.attributes.everywhere(broker.attribute).values())
    problem = rabbitmq.judge(broker.name, nodes, published, deep=deep)
    if problem is not None:
        raise GenericError(problem.reason)
    if call.context.is_probe:
        broker.publish()  # found running after Pacemaker restarted: the peers must know
    return OcfStatus.SUCCESS


def _without_api(call: Call, broker: Broker, err: rabbitmq.RabbitError) -> int:
    """The management API did not answer: ask the node itself (an Erlang VM, about 0.75 s of
    CPU, only on this path). While RabbitMQ notices a partition the API of a healthy node can
    stall for seconds; a paused node (pause_minority) has stopped RabbitMQ altogether."""
    timeout = max(5.0, min(20.0, call.deadline.remaining() - 2.0))
    if rabbitmq.is_running(call.runner, str(call.config.diagnostics), broker.env, timeout):
        call.log.warning(f"{err}; but RabbitMQ runs on {broker.name}")
        return OcfStatus.SUCCESS
    raise GenericError(
        f"{broker.name} is not serving (paused in a minority partition, or its application "
        f"stopped): {err}"
    )


def notify(call: Call) -> int:
    data = call.context.notify
    if data is None or data.type != "post" or data.operation != "stop":
        return OcfStatus.SUCCESS
    if not call.config.forget_fenced_nodes:
        return OcfStatus.SUCCESS
    broker = Broker(call)
    if broker.pid() is None:
        return OcfStatus.SUCCESS
    stopped = [n for n in data.unames("stop") if n != broker.pacemaker_node]
    running = sorted(set(broker.running_peers()) | {broker.pacemaker_node})
    if not stopped or running[0] != broker.pacemaker_node:
        return OcfStatus.SUCCESS  # one instance acts: the first running one
    from stackha.pacemaker import stonith_admin

    for node in stopped:
        import time

        if not stonith_admin.fenced_recently(call.runner, node, now=time.time(), timeout=10.0):
            continue
        member = rabbitmq.node_name(node.split(".", 1)[0])
        try:
            rabbitmq.forget_cluster_node(broker.ctl, member)
        except rabbitmq.RabbitError as error:
            call.log.warning(f"could not forget a fenced node: {error}")
        else:
            call.log.warning(f"forgot {member}: Pacemaker fenced {node}")
    return OcfStatus.SUCCESS


AGENT = Agent(
    spec=SPEC,
    handlers={"start": start, "stop": stop, "monitor": monitor, "notify": notify},
    validate=validate,
    leftovers=leftovers,
)
