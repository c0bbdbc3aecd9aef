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
"""

from __future__ import annotations

import json
import re

from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Optional

RABBITMQCTL = "/usr/sbin/rabbitmqctl"
APPLY_TO = ("queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams")
# Classic queue mirroring keys, gone in RabbitMQ 4.0 (a policy with them has no effect there).
MIRRORING_KEYS = frozenset({"ha-mode", "ha-params", "ha-sync-mode", "ha-promote-on-shutdown"})
MIRRORING_REMOVED_IN = (4, 0)


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


def has_classic_mirroring(version: tuple[int, int, int]) -> bool:
    return version[:2] < MIRRORING_REMOVED_IN


class ClusterStatus(Record):
    """``rabbitmqctl cluster_status --formatter json``, the parts that matter here."""

    __slots__ = ("members", "running", "partitions", "alarms")
    members: tuple[str, ...]
    running: tuple[str, ...]
    partitions: Mapping[str, tuple[str, ...]]
    alarms: tuple[str, ...]

    def __init__(
        self,
        members: tuple[str, ...],
        running: tuple[str, ...],
        partitions: Mapping[str, tuple[str, ...]],
        alarms: tuple[str, ...],
    ) -> None:
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
    return ClusterStatus(
        members=members,
        running=_node_list(data.get("running_nodes"), members),
        partitions=partitions,
        alarms=alarms,
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
    """(username, password) from a file of ``username=...`` and ``password=...`` lines."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as err:
        raise CredentialsError(f"credentials file {path}: {err.strerror}") from None
    fields = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            fields[key.strip()] = value.strip()
    if not fields.get("username") or not fields.get("password"):
        raise CredentialsError(f"credentials file {path} needs username= and password= lines")
    return fields["username"], fields["password"]


def fetch_nodes(
    address: str, port: int, username: str, password: str, timeout: float
) -> dict[str, NodeHealth]:
    """Every member's health from the management API (one HTTP request)."""
    import base64
    import urllib.error
    import urllib.request

    host = f"[{address}]" if ":" in address else address
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{host}:{port}{NODES_PATH}", headers={"Authorization": f"Basic {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        if err.code == 401:
            raise CredentialsError(
                f"the management API on {host}:{port} refused user {username}"
            ) from None
        raise RabbitError(f"the management API on {host}:{port} answered {err.code}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise NotReachable(f"no management API on {host}:{port}: {reason}") from None
    return parse_nodes(body)


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


def judge(
    me: str, nodes: Mapping[str, NodeHealth], expected: Sequence[str], deep: bool
) -> Optional[Problem]:
    """None when ``me`` is healthy in the cluster ``nodes`` describes, else the problem.

    Always: this node runs and sees no partition, and it is not in a minority of the members
    it knows (pause_minority pauses such a node; a node that should have paused and did not is
    as bad). ``deep``: no memory or disk alarm here, and every node Pacemaker expects runs.
    """
    mine = nodes.get(me)
    if mine is None:
        return Problem(f"{me} is not a member of the cluster it answers for")
    if not mine.running:
        return Problem(f"{me} is not running (paused, or its application stopped)")
    if mine.partitions:
        return Problem(f"{me} sees a partition: cut off from {', '.join(mine.partitions)}")
    running = [n for n, health in nodes.items() if health.running]
    if 2 * len(running) <= len(nodes) and len(nodes) > 2:
        return Problem(
            f"{me} is in a minority: {len(running)} of {len(nodes)} members running "
            f"({', '.join(sorted(running))})"
        )
    if deep:
        if mine.alarms:
            return Problem(f"{me} has a resource alarm: {', '.join(mine.alarms)}")
        missing = [n for n in expected if not (n in nodes and nodes[n].running)]
        if missing:
            return Problem(f"members Pacemaker runs are not in the cluster: {', '.join(missing)}")
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

    def set_argv(self, ctl: str = RABBITMQCTL) -> list[str]:
        return [
            ctl,
            "set_policy",
            "--vhost",
            self.vhost,
            "--priority",
            str(self.priority),
            "--apply-to",
            self.apply_to,
            self.name,
            self.pattern,
            json.dumps(self.definition, sort_keys=True, separators=(",", ":")),
        ]


def parse_policies(text: str, version: tuple[int, int, int]) -> list[Policy]:
    """Policies from the agent's parameter: a JSON list of objects with ``name``, ``pattern``,
    ``definition`` and optionally ``apply-to``, ``priority``, ``vhost``. Raises RabbitError
    naming the policy and the problem."""
    try:
        data = json.loads(text or "[]")
    except ValueError as err:
        raise RabbitError(f"policies is not JSON: {err}") from None
    if not isinstance(data, list):
        raise RabbitError("policies must be a JSON list of policy objects")
    policies = []
    for index, entry in enumerate(data):
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
        if apply_to not in APPLY_TO:
            raise RabbitError(f"{label}: apply-to {apply_to!r} is not one of {', '.join(APPLY_TO)}")
        priority = entry.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise RabbitError(f"{label}: priority must be a whole number")
        vhost = entry.get("vhost", "/")
        if not isinstance(vhost, str) or not vhost:
            raise RabbitError(f"{label}: vhost must be a name")
        policies.append(Policy(name, pattern, definition, apply_to, priority, vhost))
    return policies


def join_argv(seed: str, ctl: str = RABBITMQCTL) -> list[list[str]]:
    """Join the cluster of ``seed`` (a running member), keeping this node's data elsewhere."""
    return [[ctl, "stop_app"], [ctl, "join_cluster", seed], [ctl, "start_app"]]


def add_user_argv(user: str, ctl: str = RABBITMQCTL) -> list[str]:
    """``add_user`` with the password on stdin (3.8+ reads it there when it is not given)."""
    return [ctl, "add_user", user]
