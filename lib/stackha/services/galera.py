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

import re

from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence
    from typing import Optional

NIL_UUID = "00000000-0000-0000-0000-000000000000"
UNKNOWN_SEQNO = -1
RECOVERED = re.compile(r"WSREP: Recovered position:?\s+([0-9a-f-]{36}):(-?\d+)")


class GaleraError(Exception):
    """A Galera state that must not be acted on; the message says why."""


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
        quorum = len(known) > len(members) // 2
        if not (allow_quorum and quorum and set(missing) <= set(fenced)):
            return Election(None, "waiting for every member to report", missing)
    best = max(known[m].seqno for m in known)
    winner = next(m for m in members if m in known and known[m].seqno == best)
    others = [m for m in known if m != winner and known[m].seqno == best]
    tie = f"; tied with {', '.join(others)}, first in wsrep_cluster_address wins" if others else ""
    return Election(winner, f"{winner} has the highest seqno {best}{tie}")
