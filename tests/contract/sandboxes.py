"""For each agent, parameters under which it really runs on this machine, for ocf-tester.

Every file in agents/ needs an entry: the contract suite fails for an agent without one, so a new
agent cannot slip past ocf-tester.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from agent_runs import free_port
from mariadb_sandbox import one_member_galera


def haproxy(directory: Path) -> dict[str, str]:
    """A loopback HAProxy that answers HTTP itself, with a stats socket."""
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {directory}/run/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{free_port()}
    http-request return status 200 content-type text/plain string ok
"""
    )
    return {"config": str(config), "pidfile": str(directory / "haproxy.pid")}


def galera(directory: Path) -> dict[str, str]:
    return one_member_galera(directory)


SANDBOXES: dict[str, Callable[[Path], dict[str, str]]] = {
    "galera": galera,
    "haproxy": haproxy,
}
