"""corosync.conf for a cluster, written once for the namespace lab and the Vagrant lab alike.

Corosync's parser rejects one-line blocks (``totem { version: 2 }``): one directive per line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    name: str
    nodeid: int
    address: str


def render(cluster_name: str, members: Sequence[Member], token_ms: int = 3000) -> str:
    """The corosync.conf text: knet, one ring, votequorum, logging to /var/log/cluster with
    millisecond timestamps (``hires``: a failover's token, consensus and membership lines are a
    few seconds apart, bench/openstack_stack.py reads them)."""
    nodes = "".join(
        f"""    node {{
        ring0_addr: {member.address}
        name: {member.name}
        nodeid: {member.nodeid}
    }}
"""
        for member in members
    )
    two_node = "    two_node: 1\n" if len(members) == 2 else ""
    return f"""totem {{
    version: 2
    cluster_name: {cluster_name}
    transport: knet
    token: {token_ms}
    crypto_cipher: aes256
    crypto_hash: sha256
}}

nodelist {{
{nodes}}}

quorum {{
    provider: corosync_votequorum
{two_node}}}

logging {{
    to_logfile: yes
    logfile: /var/log/cluster/corosync.log
    to_syslog: no
    to_stderr: no
    timestamp: hires
}}
"""
