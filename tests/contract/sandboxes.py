"""For each agent, parameters under which it really runs on this machine, for ocf-tester.

Every file in agents/ needs an entry: the contract suite fails for an agent without one, so a new
agent cannot slip past ocf-tester.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Callable

import haproxy_sandbox
from agent_runs import free_port
from mariadb_sandbox import one_member_galera, running_galera
from openstack_sandbox import (
    FROM_RECORD,
    agent_parameters,
    mariadb_database,
    prepare_api_service,
    prepare_keystone,
    prepare_nova_api,
    reachable_directory,
    running_service,
    stop_leftovers,
)
from rabbitmq_sandbox import one_node_rabbitmq
from stackha.process import ProcTable, read_pidfile
from stackha.services.api_catalog import service_named


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


class SharedOpenStack:
    """What the API services' sandboxes share for the whole session: one MariaDB (a one-member
    Galera), one running keystone (on SQLite) that the others validate tokens with, and each
    service prepared once (keystone's own sandbox a second keystone, not running; nova-api on
    SQLite; the others from their records, on the shared MariaDB). Preparing costs 5-40 s a
    service (key setup, database migrations): per test, the tier would take 20 minutes more.
    Each test starts and stops the service through its agent; the sandbox stops whatever of it
    is left. :meth:`close` (the contract conftest, at the end of the session) stops the rest."""

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.root: Path = Path()
        self.galera: Mapping[str, str] = {}
        self.identity: Mapping[str, str] = {}
        self.prepared: dict[str, dict[str, str]] = {}

    def _start(self) -> None:
        if self.identity:
            return
        self.root = self.stack.enter_context(reachable_directory("stackha-api-contract-"))
        self.galera = self.stack.enter_context(running_galera(self.root / "galera"))
        identity = prepare_keystone(self.root / "identity")
        self.stack.enter_context(running_service(identity, "keystone"))
        self.identity = identity

    def service(self, name: str) -> dict[str, str]:
        """The agent's parameters for ``name`` (keystone, nova-api or one of FROM_RECORD),
        prepared on first use. No message broker: oslo.messaging's fake."""
        self._start()
        if name not in self.prepared:
            directory = self.root / name
            if name == "keystone":
                prepared = prepare_keystone(directory)
            elif name == "nova-api":
                prepared = prepare_nova_api(directory, self.identity)
            else:
                urls = {
                    database: mariadb_database(self.galera, database)
                    for database in service_named(name).lab.databases
                }
                prepared = prepare_api_service(directory, name, self.identity, urls)
            self.stack.callback(stop_leftovers, prepared)
            self.prepared[name] = agent_parameters(prepared)
        return dict(self.prepared[name])

    def close(self) -> None:
        self.stack.close()
        self.identity = {}
        self.prepared.clear()


SHARED = SharedOpenStack()


def prepared_once(name: str) -> Callable[[Path], AbstractContextManager[dict[str, str]]]:
    """The sandbox of an API service prepared once for the session (SharedOpenStack)."""

    @contextmanager
    def sandbox(directory: Path):
        parameters = SHARED.service(name)
        try:
            yield parameters
        finally:
            stop_leftovers(parameters)

    return sandbox


# Each sandbox is a context manager: what it started is stopped when the test is done.
SANDBOXES: dict[str, Callable[[Path], AbstractContextManager[dict[str, str]]]] = {
    "galera": galera,
    "haproxy": haproxy,
    "memcached": memcached,
    "rabbitmq": rabbitmq,
    **{name: prepared_once(name) for name in ("keystone", "nova-api", *FROM_RECORD)},
}
