"""``stackha-galera-check``: HAProxy's health check of a Galera node, for the database path
OpenStack prescribes — every client through HAProxy on a VIP to one node at a time, the others
``backup`` (see ``stackha.services.haproxy.galera_listen`` and docs/templates.md).

HAProxy runs it (``option external-check``) for each server every ``inter``, as
``stackha-galera-check PROXY_ADDRESS PROXY_PORT SERVER_ADDRESS SERVER_PORT`` with an empty
environment; exit 0 puts the server up, anything else down. Up means what the galera agent
itself waits for before it calls a node Promoted: wsrep ready, in the Primary Component and
Synced (``WsrepStatus.takes_writes``), asked with the agent's own status query. A login check
(``option mysql-check``) would pass on a node cut off from the Primary Component, which refuses
every query, or on a donor blocked by a state transfer.

Why a program HAProxy forks and not clustercheck over HTTP (TripleO: xinetd on port 9200): no
daemon to install, run and watch on every node, and nothing listening; the cost is the same
(clustercheck forks a shell and the mysql client for each request too): one Python start-up
and one mariadb client, ~30 ms of CPU per check, measured in docs/templates.md.

The credentials are in a client option file (``[client]`` user and password) at
:data:`CREDENTIALS`, readable by HAProxy's user: HAProxy 2.6 passes an external check no
environment and no arguments of ours, so the path is fixed; nothing secret is on a command line.
The check user needs no privilege (``SHOW GLOBAL STATUS`` is open to any account). A MariaDB
11.4+ client verifies the server's TLS certificate by default, and refuses a 10.x server that
offers no TLS (ERROR 2026): while such servers remain, the option file says ``ssl-ca`` or
``ssl-verify-server-cert = off`` (docs/upgrade.md); the check says so when it meets one.
"""

from __future__ import annotations

import os
import sys

from stackha.services import galera

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional, TextIO

    from stackha.runner import Runner

CREDENTIALS = "/etc/mysql/stackha-galera-check.cnf"
CLIENT = "/usr/bin/mariadb"
# Below HAProxy's "timeout check" (2 s in the configurations stackha writes): a check that
# runs longer is killed and counts as failed anyway; this one says why in its own words.
TIMEOUT_S = 1.5
USAGE = "usage: stackha-galera-check PROXY_ADDRESS PROXY_PORT SERVER_ADDRESS SERVER_PORT\n"


def check(runner: Runner, host: str, port: int, credentials: str = CREDENTIALS) -> str:
    """Empty when the Galera node at ``host:port`` may take the writes; else why not."""
    if not os.access(credentials, os.R_OK):
        # the client would only say "Fatal error in defaults handling"
        return f"cannot read the check's credentials {credentials}"
    try:
        status = galera.query_status_at(runner, CLIENT, host, port, credentials, TIMEOUT_S)
    except galera.GaleraError as err:
        return str(err)
    return "" if status.takes_writes else f"{host}:{port}: {status.describe()}"


def main(
    argv: Optional[Sequence[str]] = None,
    runner: Optional[Runner] = None,
    err: Optional[TextIO] = None,
    credentials: str = CREDENTIALS,
) -> int:
    """HAProxy's external check: 0 when the server may take the writes, 1 when not, 2 on a
    bad command line. Says why on stderr (HAProxy discards it; a person running it sees it)."""
    argv = list(sys.argv if argv is None else argv)
    err = err or sys.stderr
    if len(argv) != 5 or not argv[4].isdigit():
        err.write(USAGE)
        return 2
    if runner is None:
        from stackha.runner import SubprocessRunner

        runner = SubprocessRunner()
    reason = check(runner, argv[3], int(argv[4]), credentials)
    if reason:
        err.write(f"stackha-galera-check: down: {reason}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
