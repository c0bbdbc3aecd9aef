"""What stackha knows about RabbitMQ, with no OCF in it: node names, what the cluster says of
itself, policies, and the commands that change membership.

Two ways to ask a broker, chosen by cost:

- ``rabbitmqctl``/``rabbitmq-diagnostics`` boot an Erlang VM per call: about 0.75 s of CPU
  here (3.10.8). Fine for start, join and the one-time setup; far too much for a monitor
  every 10 s (resource-agents' rabbitmq-cluster runs ``rabbitmqctl eval`` of Mnesia internals
  in every monitor).
- The management API's ``GET /api/nodes`` answers in about 5 ms with every member's
  ``running``, ``partitions`` and memory/disk alarms: the monitor's source. It is the same in
  3.x and 4.x (Mnesia or Khepri), unlike Erlang ``eval``.

Secrets (user passwords) go to ``rabbitmqctl`` on stdin, never as arguments.

What differs between releases is read from the installation and the data, not guessed from a
version alone (docs/rabbitmq.md, "RabbitMQ 4.x"): the installed version from the server's
``rabbitmq_server-X.Y.Z`` directory, the metadata store (Mnesia or Khepri) from the feature
flags the node's data has enabled, a running cluster's versions and store from its
``cluster_status``.
"""

from __future__ import annotations

import json
import re

from stackha import http_client
from stackha.credentials import CredentialsFileError, read_credentials_file
from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

    from stackha.clock import Deadline
    from stackha.runner import Result, Runner

RABBITMQCTL = "/usr/sbin/rabbitmqctl"
APPLY_TO = ("queues", "exchanges", "all")
# apply-to values RabbitMQ 3.12 added; 3.10 refuses them ("apply-to ... unrecognised").
APPLY_TO_312 = ("classic_queues", "quorum_queues", "streams")
# Classic queue mirroring keys (3.13's rabbit_mirror_queue_misc validators), gone in RabbitMQ
# 4.0: a policy with them is refused there ("... are not recognised policy settings").
MIRRORING_KEYS = frozenset(
    {
        "ha-mode",
        "ha-params",
        "ha-sync-mode",
        "ha-sync-batch-size",
        "ha-promote-on-shutdown",
        "ha-promote-on-failure",
    }
)
MIRRORING_REMOVED_IN = (4, 0)
# `add_vhost --default-queue-type` came with 3.10.8 (3.10.7's CLI has no such switch); the
# broker applies a vhost's default to durable, non-exclusive queues declared without a type.
DEFAULT_QUEUE_TYPE_FROM = (3, 10, 8)
# Khepri, the Raft-based metadata store: the khepri_db feature flag exists from 3.13
# (experimental, unsupported), is supported and opt-in in 4.0 and 4.1, enabled on new
# clusters from 4.2 (a stable flag: a node without data enables it), required in 4.3, which
# has no Mnesia and ignores cluster_partition_handling.
KHEPRI_FLAG = "khepri_db"
KHEPRI_FROM = (3, 13)
MNESIA_REMOVED_IN = (4, 3)
# What each release series requires of the others (rabbit_core_ff's `required` flags): the
# oldest series it can cluster with (and upgrade from), and the feature flags a node's data
# must have enabled for it to boot. Newest first; series not listed inherit the entry below.
REQUIREMENTS = (
    ((4, 3), (4, 2), ("khepri_db", "rabbitmq_4.2.0")),
    ((4, 0), (3, 13), ("message_containers", "stream_filtering")),
    ((3, 12), (3, 11), ()),
    ((3, 11), (3, 10), ()),
)


class RabbitError(Exception):
    """RabbitMQ refused, failed, or answered something unusable; the message says which."""


class CredentialsError(RabbitError):
    """The credentials are missing, unreadable, or refused."""


class NotReachable(RabbitError):
    """Nothing answers where the broker should."""


def node_name(host: str, prefix: str = "rabbit") -> str:
    """The Erlang node name of the broker on ``host``: ``rabbit@host``."""
    return f"{prefix}@{host}"


def host_of(node: str) -> str:
    return node.split("@", 1)[1] if "@" in node else node


def parse_version(text: str) -> tuple[int, int, int]:
    """``3.10.8`` (what ``rabbitmqctl version`` prints) as a tuple."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        raise RabbitError(f"not a RabbitMQ version: {text.strip()!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


LIB_DIR = "/usr/lib/rabbitmq/lib"
OLDEST_SUPPORTED = (3, 10, 0)


def installed_version(lib_dir: str = LIB_DIR) -> tuple[int, int, int]:
    """The installed RabbitMQ's version, from its ``rabbitmq_server-X.Y.Z`` directory: no
    Erlang VM started (``rabbitmqctl version`` costs ~0.7 s of CPU). The oldest release we
    support when nothing can be read, so that validation stays strict."""
    import os

    try:
        names = os.listdir(lib_dir)
    except OSError:
        return OLDEST_SUPPORTED
    versions = []
    for name in names:
        if name.startswith("rabbitmq_server-"):
            try:
                versions.append(parse_version(name[len("rabbitmq_server-") :]))
            except RabbitError:
                continue
    return max(versions, default=OLDEST_SUPPORTED)


def server_version(server: str, lib_dir: str = LIB_DIR) -> tuple[int, int, int]:
    """The version of the RabbitMQ whose start script is ``server``: from the script's real
    path (``/usr/lib/rabbitmq/bin/rabbitmq-server`` links into ``lib/rabbitmq_server-X.Y.Z``
    on Debian), else from the ``lib`` directory beside its ``bin``, else from ``lib_dir``."""
    import os

    real = os.path.realpath(server)
    for part in reversed(real.split("/")):
        if part.startswith("rabbitmq_server-"):
            try:
                return parse_version(part[len("rabbitmq_server-") :])
            except RabbitError:
                break
    beside = os.path.join(os.path.dirname(os.path.dirname(server)), "lib")
    if os.path.isdir(beside):
        return installed_version(beside)
    return installed_version(lib_dir)


def version_text(version: Sequence[int]) -> str:
    return ".".join(map(str, version))


def has_classic_mirroring(version: tuple[int, int, int]) -> bool:
    return version[:2] < MIRRORING_REMOVED_IN


def has_default_queue_type(version: tuple[int, int, int]) -> bool:
    return version >= DEFAULT_QUEUE_TYPE_FROM


def add_vhost_argv(vhost: str, version: tuple[int, int, int]) -> list[str]:
    """``add_vhost`` (without the rabbitmqctl path): quorum queues the vhost's default where
    the release can say so (3.10.8+), plain before."""
    if has_default_queue_type(version):
        return ["add_vhost", vhost, "--default-queue-type", "quorum"]
    return ["add_vhost", vhost]


def _requirements(version: Sequence[int]) -> Optional[tuple[tuple[int, int], tuple[str, ...]]]:
    for series, oldest, flags in REQUIREMENTS:
        if tuple(version[:2]) >= series:
            return oldest, flags
    return None


def cluster_refusal(
    me: str, mine: tuple[int, int, int], peer: str, theirs: tuple[int, int, int]
) -> Optional[str]:
    """Why ``me`` (running ``mine``) and ``peer`` (``theirs``) can never be one cluster, or
    None when RabbitMQ may accept them (its own feature flag check has the last word)."""
    newer, older = max(mine, theirs), min(mine, theirs)
    needs = _requirements(newer)
    if needs is None or tuple(older[:2]) >= needs[0]:
        return None
    # short: Pacemaker keeps the first 128 characters of an exit reason
    return (
        f"{me} runs RabbitMQ {version_text(mine)}, {peer} {version_text(theirs)}: RabbitMQ "
        f"{version_text(newer[:2])} clusters only with {version_text(needs[0])}+ (all feature "
        "flags on)"
    )


# -- the metadata store: Mnesia or Khepri ------------------------------------------------------

MNESIA = "mnesia"
KHEPRI = "khepri"
_ERLANG_ATOM = re.compile(r"'((?:[^'\\]|\\.)*)'|([a-z][A-Za-z0-9_@]*)")


def feature_flags_file(mnesia_base: str, node: str) -> str:
    """Where a node keeps the feature flags it has enabled (RabbitMQ's default,
    ``RABBITMQ_FEATURE_FLAGS_FILE`` unset): ``<mnesia_base>/<node>-feature_flags``, an Erlang
    list of atoms. The same name in 3.10 and 4.x; it survives 4.3's removal of Mnesia."""
    return f"{mnesia_base.rstrip('/')}/{node}-feature_flags"


def parse_feature_flags(text: str) -> frozenset[str]:
    """The atoms of an Erlang list such as ``[khepri_db,'rabbitmq_4.2.0'].``."""
    return frozenset(quoted or bare for quoted, bare in _ERLANG_ATOM.findall(text))


def read_feature_flags(path: str) -> Optional[frozenset[str]]:
    """The feature flags a node's data has enabled; None when it has no such file (a node
    that never started, or a file kept elsewhere)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_feature_flags(handle.read())
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RabbitError(f"feature flags file {path}: {err.strerror}") from None


def metadata_store(version: tuple[int, int, int], flags: Optional[frozenset[str]]) -> str:
    """KHEPRI or MNESIA, what a node of ``version`` with the feature flags ``flags`` (None: no
    data yet) boots with; "" when that is not known before it boots (a node without data of
    3.13-4.2 takes the store of the cluster it joins, and 4.2 enables Khepri on a new one)."""
    if version[:2] >= MNESIA_REMOVED_IN:
        return KHEPRI
    if version[:2] < KHEPRI_FROM:
        return MNESIA
    if flags is None:
        return ""
    return KHEPRI if KHEPRI_FLAG in flags else MNESIA


def data_refusal(
    node: str, version: tuple[int, int, int], flags: Optional[frozenset[str]]
) -> Optional[str]:
    """Why RabbitMQ ``version`` cannot boot this node's data (its feature flags lack what the
    release requires), or None. Said before booting, in one line, instead of a boot failure
    deep in RabbitMQ's log."""
    if flags is None:
        return None
    needs = _requirements(version)
    if needs is None:
        return None
    oldest, required = needs
    missing = [flag for flag in required if flag not in flags]
    if not missing:
        return None
    if KHEPRI_FLAG in missing:
        return (
            f"the data of {node} uses Mnesia (feature flag {KHEPRI_FLAG} not enabled) and "
            f"RabbitMQ {version_text(version)} has no Mnesia: upgrade through "
            f"{version_text(oldest)} and run rabbitmqctl enable_feature_flag all there"
        )
    # What to do first, the flags last: Pacemaker keeps 128 characters of an exit reason.
    return (
        f"RabbitMQ {version_text(version)} cannot boot the data of {node}: it upgrades only "
        f"from {version_text(oldest)}+ with all feature flags on (missing: {', '.join(missing)})"
    )


class ClusterStatus(Record):
    """``rabbitmqctl cluster_status --formatter json``, the parts that matter here.

    ``versions``: {running member: RabbitMQ version}. ``khepri``: whether the cluster's
    metadata store is Khepri (its ``khepri_db`` feature flag enabled), None when the output
    lists no feature flags. Both are printed alike by 3.10 and 4.x."""

    __slots__ = ("members", "running", "partitions", "alarms", "versions", "khepri")
    members: tuple[str, ...]
    running: tuple[str, ...]
    partitions: Mapping[str, tuple[str, ...]]
    alarms: tuple[str, ...]
    versions: Mapping[str, tuple[int, int, int]]
    khepri: Optional[bool]

    def __init__(
        self,
        members: tuple[str, ...],
        running: tuple[str, ...],
        partitions: Mapping[str, tuple[str, ...]],
        alarms: tuple[str, ...],
        versions: Optional[Mapping[str, tuple[int, int, int]]] = None,
        khepri: Optional[bool] = None,
    ) -> None:
        versions = dict(versions or {})
        self._freeze(locals())


def _node_list(value: object, known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    if isinstance(value, str) and value:
        # RabbitMQ 4.1.2-4.1.3 printed running_nodes as one concatenated string
        # (rabbitmq-server#14398): split it along the known members.
        found = tuple(n for n in known if n in value)
        return found or (value,)
    return ()


def parse_cluster_status(text: str) -> ClusterStatus:
    try:
        data = json.loads(text)
    except ValueError:
        raise RabbitError("cluster_status did not print JSON") from None
    if not isinstance(data, dict):
        raise RabbitError("cluster_status did not print a JSON object")
    members = _node_list(data.get("disk_nodes"), ()) + _node_list(data.get("ram_nodes"), ())
    raw_partitions = data.get("partitions") or {}
    partitions: dict[str, tuple[str, ...]] = {}
    if isinstance(raw_partitions, dict):
        partitions = {str(k): _node_list(v, members) for k, v in raw_partitions.items() if v}
    alarms = tuple(
        f"{a.get('node', '?')}: {a.get('type', 'alarm')}" if isinstance(a, dict) else str(a)
        for a in data.get("alarms") or []
    )
    versions = {}
    raw_versions = data.get("versions")
    for node, entry in (raw_versions if isinstance(raw_versions, dict) else {}).items():
        # a member that did not answer has an empty version (the CLI prints "")
        if isinstance(entry, dict) and entry.get("rabbitmq_version"):
            try:
                versions[str(node)] = parse_version(str(entry["rabbitmq_version"]))
            except RabbitError:
                continue
    khepri = None
    flags = data.get("feature_flags")
    if isinstance(flags, list) and flags:
        states = {str(f.get("name")): str(f.get("state")) for f in flags if isinstance(f, dict)}
        khepri = states.get(KHEPRI_FLAG) == "enabled"
    return ClusterStatus(
        members=members,
        running=_node_list(data.get("running_nodes"), members),
        partitions=partitions,
        alarms=alarms,
        versions=versions,
        khepri=khepri,
    )


class NodeHealth(Record):
    """One member as the management API's ``/api/nodes`` reports it."""

    __slots__ = ("name", "running", "partitions", "memory_alarm", "disk_alarm")
    name: str
    running: bool
    partitions: tuple[str, ...]
    memory_alarm: bool
    disk_alarm: bool

    def __init__(
        self,
        name: str,
        running: bool,
        partitions: tuple[str, ...],
        memory_alarm: bool,
        disk_alarm: bool,
    ) -> None:
        self._freeze(locals())

    @property
    def alarms(self) -> tuple[str, ...]:
        return tuple(
            name for name, on in (("memory", self.memory_alarm), ("disk", self.disk_alarm)) if on
        )


NODES_PATH = "/api/nodes?columns=name,running,partitions,mem_alarm,disk_free_alarm"


def read_credentials(path: str) -> tuple[str, str]:
    """(username, password) from a credentials file (:mod:`stackha.credentials`) with
    ``username=...`` and ``password=...`` lines."""
    try:
        fields = read_credentials_file(path)
    except CredentialsFileError as err:
        raise CredentialsError(str(err)) from None
    if not fields.get("username") or not fields.get("password"):
        raise CredentialsError(f"credentials file {path} needs username= and password= lines")
    return fields["username"], fields["password"]


def fetch_nodes(
    address: str, port: int, username: str, password: str, timeout: float
) -> dict[str, NodeHealth]:
    """Every member's health from the management API (one HTTP request, all of it within
    ``timeout`` seconds)."""
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{port}{NODES_PATH}"
    try:
        answer = http_client.get(url, timeout, http_client.basic_authorization(username, password))
    except http_client.NotReachable as err:
        raise NotReachable(f"no management API on {host}:{port}: {err.reason}") from None
    except http_client.HttpError as err:
        raise RabbitError(f"the management API on {host}:{port}: {err.reason}") from None
    if answer.status == 401:
        raise CredentialsError(f"the management API on {host}:{port} refused user {username}")
    # A redirect is no answer either: the management API never sends one for /api/nodes.
    if answer.status >= 300:
        raise RabbitError(f"the management API on {host}:{port} answered {answer.status}")
    return parse_nodes(answer.body)


def parse_nodes(text: str) -> dict[str, NodeHealth]:
    """``GET /api/nodes`` → {node name: health}."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RabbitError("the management API did not answer JSON") from None
    if not isinstance(data, list):
        raise RabbitError("the management API's /api/nodes is not a list")
    nodes = {}
    for entry in data:
        if not isinstance(entry, dict) or "name" not in entry:
            continue
        name = str(entry["name"])
        nodes[name] = NodeHealth(
            name=name,
            running=bool(entry.get("running")),
            partitions=tuple(str(p) for p in entry.get("partitions") or ()),
            memory_alarm=bool(entry.get("mem_alarm")),
            disk_alarm=bool(entry.get("disk_free_alarm")),
        )
    return nodes


class Problem(Record):
    """Why a node is not healthy, for monitor's exit reason."""

    __slots__ = ("reason",)
    reason: str

    def __init__(self, reason: str) -> None:
        self._freeze(locals())


def in_minority(nodes: Mapping[str, NodeHealth]) -> bool:
    """Whether at most half of the members (of more than two) run."""
    running = [n for n, health in nodes.items() if health.running]
    return 2 * len(running) <= len(nodes) and len(nodes) > 2


def judge(
    me: str, nodes: Mapping[str, NodeHealth], published: Sequence[str], deep: bool
) -> Optional[Problem]:
    """None when ``me`` is healthy in the cluster ``nodes`` describes, else the problem.

    ``published``: the members Pacemaker has started (their instances' ``-node`` attributes);
    needed when ``deep`` or :func:`in_minority`, ignored otherwise.

    Always: this node runs and sees no partition, and it is not in a minority cut off from
    members that run (pause_minority pauses such a node; a node that should have paused and
    did not is as bad). A minority of members running because the others are down is no fault
    of this node: after an outage of every member the first one up runs alone until the rest
    rejoin it, and failing it would stop the one the others wait for. ``deep``: no memory or
    disk alarm here, and every node Pacemaker runs an instance on is a member of this cluster.
    A member that is down is its own monitor's failure, not this node's: failing here too
    would restart healthy nodes with it.
    """
    mine = nodes.get(me)
    if mine is None:
        return Problem(f"{me} is not a member of the cluster it answers for")
    if not mine.running:
        return Problem(f"{me} is not running (paused, or its application stopped)")
    if mine.partitions:
        return Problem(f"{me} sees a partition: cut off from {', '.join(mine.partitions)}")
    if in_minority(nodes):
        running = sorted(n for n, health in nodes.items() if health.running)
        unseen = sorted(n for n in published if n in nodes and not nodes[n].running)
        if unseen:
            return Problem(
                f"{me} is in a minority: {len(running)} of {len(nodes)} members running "
                f"({', '.join(running)}), cut off from {', '.join(unseen)} that Pacemaker runs"
            )
    if deep:
        if mine.alarms:
            return Problem(f"{me} has a resource alarm: {', '.join(mine.alarms)}")
        missing = [n for n in published if n not in nodes]
        if missing:
            return Problem(
                f"nodes Pacemaker runs RabbitMQ on are not members of this cluster: "
                f"{', '.join(missing)}"
            )
    return None


class Policy(Record):
    """A policy as ``rabbitmqctl set_policy`` takes it."""

    __slots__ = ("name", "pattern", "definition", "apply_to", "priority", "vhost")
    name: str
    pattern: str
    definition: Mapping[str, object]
    apply_to: str
    priority: int
    vhost: str

    def __init__(
        self,
        name: str,
        pattern: str,
        definition: Mapping[str, object],
        apply_to: str = "all",
        priority: int = 0,
        vhost: str = "/",
    ) -> None:
        self._freeze(locals())


def _json_list(text: str, parameter: str, of: str) -> list[object]:
    """A parameter holding a JSON list (empty when unset)."""
    try:
        data = json.loads(text or "[]")
    except ValueError as err:
        raise RabbitError(f"{parameter} is not JSON: {err}") from None
    if not isinstance(data, list):
        raise RabbitError(f"{parameter} must be a JSON list of {of}")
    return data


def parse_policies(text: str, version: tuple[int, int, int]) -> list[Policy]:
    """Policies from the agent's parameter: a JSON list of objects with ``name``, ``pattern``,
    ``definition`` and optionally ``apply-to``, ``priority``, ``vhost``. Raises RabbitError
    naming the policy and the problem."""
    policies = []
    for index, entry in enumerate(_json_list(text, "policies", "policy objects")):
        label = f"policy {index + 1}"
        if not isinstance(entry, dict):
            raise RabbitError(f"{label} is not a JSON object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise RabbitError(f"{label} has no name")
        label = f"policy {name!r}"
        pattern = entry.get("pattern")
        if not isinstance(pattern, str):
            raise RabbitError(f"{label} has no pattern")
        try:
            re.compile(pattern)
        except re.error as err:
            raise RabbitError(
                f"{label}: pattern {pattern!r} is not a regular expression: {err}"
            ) from None
        definition = entry.get("definition")
        if not isinstance(definition, dict) or not definition:
            raise RabbitError(f"{label}: definition must be a non-empty JSON object")
        mirroring = sorted(MIRRORING_KEYS & set(definition))
        if mirroring and not has_classic_mirroring(version):
            raise RabbitError(
                f"{label}: {', '.join(mirroring)} (classic queue mirroring) does not exist in "
                f"RabbitMQ {'.'.join(map(str, version))}; use quorum queues"
            )
        apply_to = entry.get("apply-to", "all")
        allowed = APPLY_TO + (APPLY_TO_312 if version[:2] >= (3, 12) else ())
        if apply_to not in allowed:
            raise RabbitError(f"{label}: apply-to {apply_to!r} is not one of {', '.join(allowed)}")
        priority = entry.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RabbitError(f"{label}: priority must be a whole number")
        vhost = entry.get("vhost", "/")
        if not isinstance(vhost, str) or not vhost:
            raise RabbitError(f"{label}: vhost must be a name")
        policies.append(Policy(name, pattern, definition, apply_to, priority, vhost))
    return policies


# -- the broker's own files and environment ------------------------------------------------

# The real scripts: /usr/sbin/rabbitmq-server and rabbitmqctl on Debian are a wrapper that
# switches to the rabbitmq user with su and sends the server's output to a fixed log file.
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
DIAGNOSTICS = "/usr/lib/rabbitmq/bin/rabbitmq-diagnostics"
PARTITION_HANDLING = ("pause_minority", "autoheal", "ignore")
_ERLANG_NODE = re.compile(r"'?([A-Za-z0-9_.+-]+@[A-Za-z0-9_.-]+)'?")


class Membership(Record):
    """What a node's data directory says of the cluster it belonged to (Mnesia's
    ``cluster_nodes.config`` and ``nodes_running_at_shutdown``). Empty tuples when the data
    exists but does not say: under Khepri, which keeps its membership in Raft's own files
    (4.0-4.2 stop writing Mnesia's files once khepri_db is enabled and delete them after the
    migration; 4.3 never writes them), they are not read at all."""

    __slots__ = ("members", "running_at_shutdown")
    members: tuple[str, ...]
    running_at_shutdown: tuple[str, ...]

    def __init__(self, members: tuple[str, ...], running_at_shutdown: tuple[str, ...]) -> None:
        self._freeze(locals())


def data_dir(mnesia_base: str, node: str) -> str:
    """Where a node keeps its data: ``RABBITMQ_MNESIA_BASE/<node name>``."""
    return f"{mnesia_base.rstrip('/')}/{node}"


def parse_erlang_nodes(text: str) -> tuple[str, ...]:
    """Node names in an Erlang term such as ``{[rabbit@a,rabbit@b],[rabbit@a]}.``, in order,
    each once."""
    seen: list[str] = []
    for name in _ERLANG_NODE.findall(text):
        if name not in seen:
            seen.append(name)
    return tuple(seen)


def read_membership(directory: str, mnesia: bool = True) -> Optional[Membership]:
    """None when the node has no data (never started, or its data directory is empty).
    ``mnesia``: read Mnesia's files; false for a node whose store is Khepri, where such files
    are at best stale (a membership with no members)."""
    import os

    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RabbitError(f"data directory {directory}: {err.strerror}") from None
    if not entries:
        return None

    def nodes_in(name: str) -> tuple[str, ...]:
        try:
            with open(f"{directory}/{name}", encoding="utf-8", errors="replace") as handle:
                return parse_erlang_nodes(handle.read())
        except FileNotFoundError:
            return ()
        except OSError as err:
            raise RabbitError(f"{directory}/{name}: {err.strerror}") from None

    if not mnesia:
        return Membership((), ())
    members = nodes_in("cluster_nodes.config")
    return Membership(members, nodes_in("nodes_running_at_shutdown"))


class BootClaim(Record):
    """A starting instance's word, as the node attribute ``<resource>-boot`` carries it, after
    an outage of every member: it is ``waiting`` to boot, or has taken the ``first`` boot.
    ``last_down``: its data says it was the last member running (Mnesia's
    ``nodes_running_at_shutdown`` names it alone), so its copy is the newest."""

    __slots__ = ("state", "last_down", "name")
    state: str
    last_down: bool
    name: str

    def __init__(self, state: str, last_down: bool, name: str) -> None:
        self._freeze(locals())

    def value(self) -> str:
        return f"{self.state}:{int(self.last_down)}:{self.name}"

    def precedence(self) -> tuple[bool, str]:
        """Sorts first the claim that should boot first: the last member down, then by name."""
        return (not self.last_down, self.name)


BOOT_STATES = ("waiting", "first")


def parse_boot_claim(value: str) -> Optional[BootClaim]:
    """The claim an attribute value carries; None for a value that is not one (ignored)."""
    parts = value.split(":", 2)
    if len(parts) != 3 or parts[0] not in BOOT_STATES or parts[1] not in ("0", "1"):
        return None
    if "@" not in parts[2]:
        return None
    return BootClaim(parts[0], parts[1] == "1", parts[2])


def is_last_down(me: str, membership: Membership) -> bool:
    """Whether this node's data says it was the last member of its cluster running."""
    return membership.running_at_shutdown == (me,)


def first_booter(claims: Sequence[BootClaim]) -> Optional[BootClaim]:
    """Which of the claims of starting instances boots first after an outage of every member.

    A claim already ``first`` wins (the instance may be booting: never a second one); between
    two such, and otherwise, the last member down, then the first by name. Every instance
    computes this over the same attributes, so they agree without talking.
    """
    if not claims:
        return None
    taken = [c for c in claims if c.state == "first"]
    return min(taken or claims, key=BootClaim.precedence)


def partition_handling_for(
    setting: str, instances: Optional[int], store: str = ""
) -> Optional[str]:
    """The cluster_partition_handling to run with: ``setting`` itself, or for ``auto``
    pause_minority from three instances on (a majority exists to keep serving) and autoheal
    for two (pause_minority would pause both halves). None: leave RabbitMQ's configuration,
    and always under Khepri (``store``), where no strategy applies: a minority of members
    can change nothing (Raft), 4.0-4.2 log the setting "unapplicable with Khepri" and 4.3
    removed it. An unknown store (a node without data, 3.13-4.2) gets the setting: Mnesia
    needs it, Khepri ignores it."""
    if store == KHEPRI:
        return None
    if setting in PARTITION_HANDLING:
        return setting
    if setting != "auto" or instances is None:
        return None
    return "pause_minority" if instances >= 3 else "autoheal"


def partition_handling_refusal(
    setting: str, version: tuple[int, int, int], store: str
) -> Optional[str]:
    """Why ``setting`` cannot work on a node of ``version`` whose store is ``store``, or None.
    ``pause_minority`` is Khepri's own behaviour (a minority changes nothing) and ``auto`` and
    ``config`` adapt; ``autoheal`` and ``ignore`` (a minority carrying on) do not exist."""
    if store != KHEPRI or setting not in ("autoheal", "ignore"):
        return None
    where = (
        f"RabbitMQ {version_text(version)}, which has no Mnesia"
        if version[:2] >= MNESIA_REMOVED_IN
        else "this node's Khepri data"
    )
    return (
        f"partition_handling={setting} cannot work with {where}: under Khepri a minority of "
        "members changes nothing (Raft); set partition_handling=auto"
    )


def server_environment(
    node: str,
    home: str,
    pid_file: str,
    log_dir: str,
    mnesia_base: str,
    config_file: str = "",
    env_file: str = "",
    partition_handling: Optional[str] = None,
) -> dict[str, str]:
    """The environment of the server and of every rabbitmqctl call aimed at it. ``HOME`` is
    where the Erlang cookie is read from (root's own cookie would not match the node's)."""
    environment = {
        "HOME": home,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_PID_FILE": pid_file,
        "RABBITMQ_LOG_BASE": log_dir,
        "RABBITMQ_MNESIA_BASE": mnesia_base,
    }
    if config_file:
        environment["RABBITMQ_CONFIG_FILE"] = config_file
    if env_file:
        environment["RABBITMQ_CONF_ENV_FILE"] = env_file
    if partition_handling:
        # On the command line it wins over rabbitmq.conf (checked with 3.10.8); START_ARGS
        # leaves SERVER_ADDITIONAL_ERL_ARGS to the operator's rabbitmq-env.conf.
        environment["RABBITMQ_SERVER_START_ARGS"] = (
            f"-rabbit cluster_partition_handling {partition_handling}"
        )
    return environment


class CookieMismatch(RabbitError):
    """A peer refused this node's Erlang cookie."""


def ctl_failure(output: str, what: str) -> RabbitError:
    """The error for a failed rabbitmqctl call, from what it printed."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    text = " ".join(lines)
    # 3.10's CLI says "TCP connection succeeded but Erlang distribution failed" (and suggests
    # the cookie) where newer ones say "Authentication failed ... check the Erlang cookie".
    if (
        "Authentication failed" in text
        or "Erlang distribution failed" in text
        or ("cookie" in text.lower() and "rejected" in text)
    ):
        return CookieMismatch(f"{what}: the Erlang cookie does not match the peer's")
    if "nodedown" in text or "unable to connect" in text.lower() or "Could not" in text:
        return NotReachable(f"{what}: the node is not reachable ({_last_error(lines)})")
    return RabbitError(f"{what}: {_last_error(lines)}")


def _last_error(lines: Sequence[str]) -> str:
    # rabbitmqctl prints "Error:" then the explanation on the following lines
    for index, line in enumerate(lines):
        if line.startswith("Error:"):
            rest = line[len("Error:") :].strip()
            tail = [rest] if rest else []
            return " ".join(tail + list(lines[index + 1 : index + 3]))[:300] or "failed"
    return (lines[-1] if lines else "no output")[:300]


# -- users and vhosts as parameters --------------------------------------------------------


class User(Record):
    """A user the agent keeps: its password comes from a file, never from the CIB."""

    __slots__ = ("name", "password_file", "tags", "permissions")
    name: str
    password_file: str
    tags: tuple[str, ...]
    permissions: Mapping[str, tuple[str, str, str]]

    def __init__(
        self,
        name: str,
        password_file: str,
        tags: tuple[str, ...] = (),
        permissions: Optional[Mapping[str, tuple[str, str, str]]] = None,
    ) -> None:
        permissions = dict(permissions or {})
        self._freeze(locals())


def parse_users(text: str) -> list[User]:
    """Users from the agent's parameter: a JSON list of objects with ``name``,
    ``password_file``, optional ``tags`` (list) and ``permissions`` ({vhost: [configure,
    write, read]}). Raises RabbitError naming the user and the problem."""
    users = []
    for index, entry in enumerate(_json_list(text, "users", "user objects")):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise RabbitError(f"user {index + 1} is not an object with a name")
        name = entry["name"]
        label = f"user {name!r}"
        password_file = entry.get("password_file")
        if not isinstance(password_file, str) or not password_file.startswith("/"):
            raise RabbitError(f"{label} needs password_file, an absolute path")
        tags = entry.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise RabbitError(f"{label}: tags must be a list of names")
        raw = entry.get("permissions", {})
        if not isinstance(raw, dict):
            raise RabbitError(f"{label}: permissions must map a vhost to [configure, write, read]")
        permissions = {}
        for vhost, rules in raw.items():
            if not (isinstance(rules, list) and len(rules) == 3):
                raise RabbitError(f"{label}: permissions for {vhost!r} must be three patterns")
            for rule in rules:
                try:
                    re.compile(str(rule))
                except re.error as err:
                    raise RabbitError(
                        f"{label}: permission {rule!r} is not a regular expression: {err}"
                    ) from None
            permissions[str(vhost)] = (str(rules[0]), str(rules[1]), str(rules[2]))
        users.append(User(name, password_file, tuple(tags), permissions))
    return users


def read_password(path: str) -> str:
    """The first line of a password file."""
    try:
        with open(path, encoding="utf-8") as handle:
            password = handle.readline().rstrip("\r\n")
    except OSError as err:
        raise CredentialsError(f"password file {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"password file {path} is not UTF-8 text") from None
    if not password:
        raise CredentialsError(f"password file {path} is empty")
    return password


def parse_names(text: str, key: str) -> list[str]:
    """The ``key`` of each object in a ``--formatter json`` listing (list_users → "user",
    list_vhosts → "name", list_policies → "name")."""
    try:
        data = json.loads(text or "[]")
    except ValueError:
        raise RabbitError("rabbitmqctl did not print JSON") from None
    if not isinstance(data, list):
        raise RabbitError("rabbitmqctl did not print a JSON list")
    return [str(entry[key]) for entry in data if isinstance(entry, dict) and key in entry]


def parse_policy_listing(text: str) -> dict[str, tuple[str, str, int, str]]:
    """``list_policies --formatter json`` → {name: (pattern, apply-to, priority, definition
    as canonical JSON)}, to compare with what is wanted."""
    try:
        data = json.loads(text or "[]")
    except ValueError:
        raise RabbitError("list_policies did not print JSON") from None
    found = {}
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict) or "name" not in entry:
            continue
        definition = entry.get("definition")
        if isinstance(definition, str):
            try:
                definition = json.loads(definition)
            except ValueError:
                pass
        found[str(entry["name"])] = (
            str(entry.get("pattern", "")),
            str(entry.get("apply-to", "all")),
            int(entry.get("priority", 0)),
            json.dumps(definition, sort_keys=True, separators=(",", ":")),
        )
    return found


def policy_key(policy: Policy) -> tuple[str, str, int, str]:
    return (
        policy.pattern,
        policy.apply_to,
        policy.priority,
        json.dumps(policy.definition, sort_keys=True, separators=(",", ":")),
    )


# -- rabbitmqctl: one function per verb ------------------------------------------------------

TIMED_OUT = 124  # the exit status timeout(1) gives a command it had to kill


class Rabbitmqctl:
    """``rabbitmqctl`` aimed at one node's broker: the script, the environment of that broker
    (:func:`server_environment`: ``HOME`` is where the Erlang cookie is read from) and the
    deadline every call must end before (2 s kept back for the caller to report)."""

    def __init__(
        self, runner: Runner, path: str, env: Mapping[str, str], deadline: Deadline
    ) -> None:
        self.runner = runner
        self.path = path
        self.env = env
        self.deadline = deadline

    def run(
        self, *argv: str, stdin: Optional[str] = None, timeout: float = 60.0, node: str = ""
    ) -> Result:
        """One call (``node``: aimed at that node instead, ``-n``), within ``timeout`` seconds
        and the deadline; a call that overran is a failed result (exit :data:`TIMED_OUT`)."""
        from stackha.runner import CommandTimedOut, Result

        command = [self.path, *(["-n", node] if node else []), *argv]
        try:
            return self.runner.run(
                command,
                timeout=max(5.0, min(timeout, self.deadline.remaining() - 2.0)),
                stdin=stdin,
                env=self.env,
            )
        except CommandTimedOut as err:
            # rabbitmqctl is an Erlang VM of its own: on a loaded node it can overrun even its
            # own --timeout. A failed call (the callers say what failed), never a traceback.
            return Result(tuple(command), TIMED_OUT, stderr=f"Error: {err}")

    def output(self, *argv: str, what: str, stdin: Optional[str] = None, node: str = "") -> str:
        """The call's output; the :func:`ctl_failure` of ``what`` when it failed."""
        result = self.run(*argv, stdin=stdin, node=node)
        if not result.ok:
            raise ctl_failure(result.stdout + "\n" + result.stderr, what)
        return result.stdout


def start_server(
    runner: Runner, server: str, user: str, home: str, env: Mapping[str, str], log_dir: str
) -> int:
    """Start the broker of ``env`` (:func:`server_environment`) as ``user`` from its home (the
    Erlang cookie's directory), to outlive the call; its pid. The script's own output goes to
    ``<log_dir>/<node>-startup.log``; :func:`wait` says when RabbitMQ runs."""
    from stackha.runner import Spawn

    node = env["RABBITMQ_NODENAME"]
    output = f"{log_dir.rstrip('/')}/{node}-startup.log"
    return runner.spawn(Spawn(argv=(server,), user=user, cwd=home, env=env, output_path=output))


def wait(ctl: Rabbitmqctl, pid_file: str, seconds: int) -> None:
    """Return once the broker whose pid file is ``pid_file`` runs RabbitMQ (the pid file
    exists, the node answers, the application is up), within ``seconds``; RabbitError
    otherwise — at once when its VM exits (a bad cookie, a port in use)."""
    result = ctl.run("wait", "--timeout", str(seconds), pid_file, timeout=seconds + 5.0)
    if not result.ok:
        raise ctl_failure(result.stdout + "\n" + result.stderr, "boot")


def stop_app(ctl: Rabbitmqctl) -> None:
    ctl.output("stop_app", what="stop_app")


def start_app(ctl: Rabbitmqctl) -> None:
    ctl.output("start_app", what="start_app")


def join_cluster(ctl: Rabbitmqctl, seed: str) -> None:
    """Make the (stopped, ``stop_app``) node a member of ``seed``'s cluster: RabbitMQ resets
    this node's own data, so only a node without data is ever joined."""
    ctl.output("join_cluster", seed, what=f"join_cluster {seed}")


def force_boot(ctl: Rabbitmqctl) -> None:
    """Let the stopped node boot without waiting for the members Mnesia last saw (Mnesia only:
    Khepri has no such thing)."""
    ctl.output("force_boot", what="force_boot")


def forget_cluster_node(ctl: Rabbitmqctl, member: str, node: str = "") -> None:
    """Remove ``member`` (stopped) from the cluster, as ``node`` (default: the ctl's node)
    sees it; RabbitError naming the member when RabbitMQ refuses."""
    result = ctl.run("forget_cluster_node", member, node=node)
    if not result.ok:
        raise ctl_failure(result.stdout + "\n" + result.stderr, f"forget {member}")


def cluster_status(ctl: Rabbitmqctl, node: str = "") -> ClusterStatus:
    """The cluster as ``node`` (default: the ctl's node) sees it (:func:`parse_cluster_status`)."""
    what = f"cluster_status on {node}" if node else "cluster_status"
    return parse_cluster_status(
        ctl.output("cluster_status", "--formatter", "json", what=what, node=node)
    )


def is_running(runner: Runner, diagnostics: str, env: Mapping[str, str], timeout: float) -> bool:
    """Whether RabbitMQ runs on the node of ``env`` (``rabbitmq-diagnostics check_running``): an
    Erlang VM, about 0.75 s of CPU, for when the management API does not answer."""
    return runner.run([diagnostics, "-q", "check_running"], timeout=timeout, env=env).ok


def ensure_vhosts(
    ctl: Rabbitmqctl, vhosts: Sequence[str], version: tuple[int, int, int]
) -> list[str]:
    """Create those of ``vhosts`` the cluster does not have (:func:`add_vhost_argv`: quorum
    queues their default where the release can say so); returns those it created."""
    existing = parse_names(
        ctl.output("list_vhosts", "--formatter", "json", what="list_vhosts"), "name"
    )
    created = []
    for vhost in vhosts:
        if vhost not in existing:
            # a new vhost has no queues yet: quorum can be its default from the start
            ctl.output(*add_vhost_argv(vhost, version), what=f"add_vhost {vhost}")
            created.append(vhost)
    return created


def ensure_user(ctl: Rabbitmqctl, user: User, password: str) -> None:
    """Create ``user`` with ``password``, or change its password when it no longer matches;
    then its tags and permissions. The password goes on stdin, never on the command line
    (3.8+ reads it there when it is not given)."""
    stdin = password + "\n"
    added = ctl.run("add_user", user.name, stdin=stdin)
    if not added.ok:
        if "already exists" not in added.stdout + added.stderr:
            raise ctl_failure(added.stdout + "\n" + added.stderr, f"add_user {user.name}")
        if not ctl.run("authenticate_user", user.name, stdin=stdin).ok:
            ctl.output("change_password", user.name, stdin=stdin, what="change_password")
    ctl.output("set_user_tags", user.name, *user.tags, what=f"set_user_tags {user.name}")
    for vhost, (configure, write, read) in user.permissions.items():
        ctl.output(
            "set_permissions",
            "-p",
            vhost,
            user.name,
            configure,
            write,
            read,
            what=f"set_permissions {user.name} on {vhost}",
        )


class PolicyRefused(RabbitError):
    """RabbitMQ refused a policy the parameters asked for (a setting this release lacks)."""


def ensure_policies(ctl: Rabbitmqctl, policies: Sequence[Policy]) -> list[Policy]:
    """Set those of ``policies`` that are not set as wanted (each vhost's ``list_policies``
    read once); returns those it set. PolicyRefused naming the policy RabbitMQ refused."""
    current: dict[str, dict[str, tuple[str, str, int, str]]] = {}
    changed = []
    for policy in policies:
        if policy.vhost not in current:
            listing = ctl.output(
                "list_policies", "-p", policy.vhost, "--formatter", "json", what="list_policies"
            )
            current[policy.vhost] = parse_policy_listing(listing)
        if current[policy.vhost].get(policy.name) == policy_key(policy):
            continue
        result = ctl.run(
            "set_policy",
            "--vhost",
            policy.vhost,
            "--priority",
            str(policy.priority),
            "--apply-to",
            policy.apply_to,
            policy.name,
            policy.pattern,
            json.dumps(policy.definition, sort_keys=True, separators=(",", ":")),
        )
        if not result.ok:
            error = ctl_failure(result.stdout + "\n" + result.stderr, "set_policy")
            raise PolicyRefused(f"policy {policy.name!r} refused by RabbitMQ: {error}")
        changed.append(policy)
    return changed


def boot_failure(log_dir: str, node: str) -> str:
    """The reason RabbitMQ gave for refusing to boot, from the end of the node's log in
    ``log_dir`` ("" when it gave none there)."""
    import os

    path = os.path.join(log_dir, f"{node}.log")
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 20000))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    for marker in ("inconsistent_cluster", "Error during startup", "BOOT FAILED"):
        index = tail.rfind(marker)
        if index >= 0:
            return " ".join(tail[index : index + 300].split())
    return ""
