"""For each agent, parameters under which it really runs on this machine, for ocf-tester.

Every file in agents/ needs an entry: the contract suite fails for an agent without one, so a new
agent cannot slip past ocf-tester.
"""

from __future__ import annotations

import os
import signal
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Callable

import haproxy_sandbox
from agent_runs import free_port
from mariadb_sandbox import one_member_galera
from openstack_sandbox import (
    agent_parameters,
    prepare_keystone,
    prepare_nova_api,
    reachable_directory,
    running_service,
    stop_leftovers,
)
from rabbitmq_sandbox import one_node_rabbitmq
from stackha.process import ProcTable, read_pidfile


@contextmanager
def haproxy(directory: Path):
    """A loopback HAProxy that answers HTTP itself, with a stats socket."""
    (directory / "haproxy.cfg").write_text(
        haproxy_sandbox.loopback_config(str(directory), free_port())
    )
    yield haproxy_sandbox.agent_parameters(str(directory))


@contextmanager
def memcached(directory: Path):
    """The distribution's memcached on a free loopback port; its pid and output files in the
    test's directory (memcached, which switches to its user, never opens them). A memcached a
    failed test left running is killed afterwards, by its pid file."""
    pidfile = directory / "memcached.pid"
    try:
        yield {
            "address": "127.0.0.1",
            "port": str(free_port()),
            "pidfile": str(pidfile),
            "log_file": str(directory / "memcached.log"),
        }
    finally:
        pid = read_pidfile(str(pidfile))
        if pid is not None and ProcTable().name(pid) == "memcached":
            os.kill(pid, signal.SIGKILL)


@contextmanager
def galera(directory: Path):
    yield one_member_galera(directory)


@contextmanager
def rabbitmq(directory: Path):
    with one_node_rabbitmq() as (parameters, _):
        yield parameters


@contextmanager
def keystone(directory: Path):
    """A prepared keystone on SQLite, not running. Its own directory: the keystone user cannot
    reach pytest's."""
    with reachable_directory("stackha-keystone-") as root:
        prepared = prepare_keystone(root / "keystone")
        try:
            yield agent_parameters(prepared)
        finally:
            stop_leftovers(prepared)


@contextmanager
def nova_api(directory: Path):
    """A prepared nova-api on SQLite, not running, and the keystone it needs, started by hand
    for the duration."""
    with reachable_directory("stackha-nova-api-") as root:
        identity = prepare_keystone(root / "keystone")
        with running_service(identity, "keystone"):
            prepared = prepare_nova_api(root / "nova", identity)
            try:
                yield agent_parameters(prepared)
            finally:
                stop_leftovers(prepared)


# Each sandbox is a context manager: what it started is stopped when the test is done.
SANDBOXES: dict[str, Callable[[Path], AbstractContextManager[dict[str, str]]]] = {
    "galera": galera,
    "haproxy": haproxy,
    "keystone": keystone,
    "memcached": memcached,
    "nova-api": nova_api,
    "rabbitmq": rabbitmq,
}
