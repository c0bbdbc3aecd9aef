"""For each agent, parameters under which it really runs on this machine, for ocf-tester.

Every file in agents/ needs an entry: the contract suite fails for an agent without one, so a new
agent cannot slip past ocf-tester.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable

from agent_runs import free_port
from mariadb_sandbox import one_member_galera
from rabbitmq_sandbox import one_node_rabbitmq


@contextmanager
def haproxy(directory: Path):
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
    yield {"config": str(config), "pidfile": str(directory / "haproxy.pid")}


@contextmanager
def galera(directory: Path):
    yield one_member_galera(directory)


@contextmanager
def rabbitmq(directory: Path):
    with one_node_rabbitmq() as (parameters, _):
        yield parameters


# Each sandbox is a context manager: what it started is stopped when the test is done.
SANDBOXES: dict[str, Callable[[Path], AbstractContextManager[dict[str, str]]]] = {
    "galera": galera,
    "haproxy": haproxy,
    "rabbitmq": rabbitmq,
}
