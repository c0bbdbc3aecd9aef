"""The whole-stack soak's three clients, each from the lab switch's network (a machine beside the
nodes, as the other lab checks reach the VIP): a writer of acknowledged rows through OpenStack's
database path, a publisher with confirms and a consumer on a quorum queue (tests/rabbitmq_checks'
Traffic), and an API client (a keystone token and nova's GET /v2.1/flavors through the VIP).

Each client's loop is bounded in requests and seconds and stops by itself; each records what it
saw so that a round can report its failed-request window.
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from galera_checks import sql
from lab_helpers import wait_for
from openstack_checks import Client, Request
from rabbitmq_checks import Traffic
from stackha import http_client
from stackha.lab.galera import MARIADB
from stackha.lab.rabbitmq import OPENSTACK_PASSWORD
from stackha.runner import CommandError
from stackha.services import openstack_api as api

SOAK_USER = "soak"
TABLE = "soak.acked"  # galera_checks.prepare_soak_table makes it: (id, via)


# -- where the rows go ---------------------------------------------------------------------------


def database_addresses(deployment):
    """Where the writer sends its rows: OpenStack's database path, HAProxy on the database VIP
    (to one Galera node at a time). The stack before that path wrote to each node's own
    Galera: ``[deployment.lab.node(n).address for n in NODES]`` here tries that again."""
    return [deployment.info["database_vip"]]


def create_soak_user(lab, password, node="node1"):
    """A database user for the writer, allowed from the lab's network (the statement on the
    client's stdin: the password is on no command line)."""
    result = lab.node_runner(node).run(
        [MARIADB, "--batch"],
        stdin=(
            f"CREATE DATABASE IF NOT EXISTS soak;\n"
            f"CREATE USER IF NOT EXISTS '{SOAK_USER}'@'%' IDENTIFIED BY '{password}';\n"
            f"ALTER USER '{SOAK_USER}'@'%' IDENTIFIED BY '{password}';\n"
            f"GRANT INSERT, SELECT ON soak.* TO '{SOAK_USER}'@'%';\n"
        ),
        timeout=30,
    )
    assert result.ok, f"creating the soak user: {result.output_line()}"
    result = sql(
        lab, node, f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, via VARCHAR(16))"
    )
    assert result.ok, result.stderr


def write_client_defaults(path, password):
    """A root-only option file with the writer's user and password (``--defaults-extra-file``)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"[client]\nuser={SOAK_USER}\npassword={password}\n")


# -- a bounded loop that records its requests -------------------------------------------------


class RequestLoop:
    """``request()`` one call after another in a thread of its own, in the lab switch's network
    namespace, ``pause`` seconds apart, until stopped, ``max_requests`` made or ``max_seconds``
    gone. ``request()`` returns "" on success or what went wrong; each call is recorded in
    ``requests`` (openstack_checks.Request), and what they saw is read with the methods
    openstack_checks.Client has for its own (``outcome``, ``wait_steady``, ...)."""

    name = "client"

    def __init__(self, lab, max_requests, max_seconds, pause):
        self.lab = lab
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.pause = pause
        self.requests: list[Request] = []
        self.crashed: list[BaseException] = []
        self.stopped_by_itself = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    # what the requests saw: openstack_checks.Client's methods, which read only self.requests
    outcome = Client.outcome
    successes_in_a_row = Client.successes_in_a_row
    is_steady = Client.is_steady
    wait_steady = Client.wait_steady

    def __enter__(self):
        self._thread.start()
        wait_for(
            lambda: self.successes_in_a_row() >= 3 or self.crashed or not self._thread.is_alive(),
            f"{self.name}: its first requests succeeding",
            60,
        )
        assert not self.crashed, self.crashed
        assert self.successes_in_a_row() >= 3, f"{self.name}: {self.outcome(0)}"
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        if exc[0] is None:  # else the test's own failure is the one to see
            assert not self._thread.is_alive(), f"{self.name} did not stop"
            assert not self.crashed, self.crashed

    def wait_for_successes(self, count, what, timeout=120):
        """Wait for ``count`` successful requests more (the client works after a round)."""
        target = self.successes() + count

        def done():
            assert self._thread.is_alive() or self.successes() >= target, (
                f"{self.name} stopped: {self.stopped_by_itself or self.crashed}"
            )
            return self.successes() >= target

        try:
            wait_for(done, f"{what}: {count} more successful requests of the {self.name}", timeout)
        except AssertionError as err:
            raise AssertionError(
                f"{err}; last 60s: {self.outcome(time.monotonic() - 60)}"
            ) from None

    def successes(self):
        return sum(1 for r in list(self.requests) if r.ok)

    def _run(self):
        try:
            self.lab.switch().call(self._loop)
        except BaseException as err:  # noqa: BLE001 - reported by __exit__
            self.crashed.append(err)

    def _loop(self):
        end = time.monotonic() + self.max_seconds
        for _ in range(self.max_requests):
            if self._stop.is_set():
                return
            if time.monotonic() >= end:
                self.stopped_by_itself = f"{self.max_seconds:.0f}s gone"
                return
            started = time.monotonic()
            kind, problem = self.request()
            self.requests.append(Request(kind, started, time.monotonic(), problem))
            self._stop.wait(self.pause)
        self.stopped_by_itself = f"{self.max_requests} requests made"

    def request(self):
        """One request: (kind, "" or what went wrong)."""
        raise NotImplementedError


class RowWriter(RequestLoop):
    """INSERTs one row at a time through the database path (:func:`database_addresses`) with
    Debian's mariadb client, and records each id the server acknowledged (the client exited 0:
    autocommit, the commit returned). A failure moves it to the next address."""

    name = "row writer"
    ids = itertools.count(int(time.time()) * 1000)  # never an id an earlier run used

    def __init__(self, deployment, defaults_file, max_requests, max_seconds, pause=0.05):
        super().__init__(deployment.lab, max_requests, max_seconds, pause)
        self.addresses = database_addresses(deployment)
        self.defaults_file = defaults_file
        self.acknowledged: list[int] = []
        self.turn = 0
        self.runner = deployment.lab.switch().runner

    def request(self):
        address = self.addresses[self.turn % len(self.addresses)]
        row = next(self.ids)
        argv = [
            MARIADB,
            f"--defaults-extra-file={self.defaults_file}",
            f"--host={address}",
            "--connect-timeout=3",
            "--batch",
            "--execute",
            f"INSERT INTO {TABLE} (id, via) VALUES ({row}, '{address}')",
        ]
        try:
            result = self.runner.run(argv, timeout=10)
            problem = "" if result.ok else result.output_line() or f"exit {result.returncode}"
        except CommandError as err:  # timed out: not acknowledged
            problem = str(err)
        if problem:
            self.turn += 1
            return "INSERT", f"{address}: {problem}"
        self.acknowledged.append(row)
        return "INSERT", ""


class ApiClient(RequestLoop):
    """A keystone token (``POST /v3/auth/tokens``) and nova's ``GET /v2.1/flavors`` with it,
    both through the VIP: a new token every ``token_every`` requests or when nova refuses it."""

    name = "API client"

    def __init__(self, deployment, max_requests, max_seconds, pause=0.1, timeout=5.0):
        super().__init__(deployment.lab, max_requests, max_seconds, pause)
        self.credentials = deployment.admin()
        self.flavors = deployment.nova_url + "/v2.1/flavors"
        self.timeout = timeout
        self.token = ""
        self.token_every = 10
        self.count = 0

    def request(self):
        self.count += 1
        if not self.token or self.count % self.token_every == 0:
            self.token = ""
            try:
                self.token = api.issue_token(self.credentials, self.timeout)
            except (api.OpenStackApiError, http_client.HttpError) as err:
                return "POST /v3/auth/tokens", str(err)
            return "POST /v3/auth/tokens", ""
        try:
            headers = {"X-Auth-Token": self.token, "Accept": "application/json"}
            answer = http_client.get(self.flavors, self.timeout, headers)
        except http_client.HttpError as err:
            return "nova GET /v2.1/flavors", str(err)
        if answer.status == 200 and '"flavors"' in answer.body:
            return "nova GET /v2.1/flavors", ""
        if answer.status == 401:
            self.token = ""
        return "nova GET /v2.1/flavors", f"answered {http_client.status_text(answer.status)}"


# -- AMQP: rabbitmq_checks.Traffic, bounded, with the time of each confirm ----------------------


class ConfirmedIds(list):
    """The publisher's list of confirmed ids, which also records when each confirm came and
    stops the publisher at its bound."""

    def __init__(self, stop, max_count):
        super().__init__()
        self.times: list[float] = []
        self.stop = stop
        self.max_count = max_count

    def append(self, item):
        self.times.append(time.monotonic())
        super().append(item)
        if len(self) >= self.max_count:
            self.stop.set()


class AmqpTraffic(Traffic):
    """rabbitmq_checks.Traffic (a publisher waiting for each confirm and a consumer, on the
    quorum queue ``soak``, moving to the next node when theirs fails), stopped by itself after
    ``max_messages`` confirms or ``max_seconds``; ``longest_silence`` is its failed window."""

    name = "AMQP publisher"

    def __init__(self, deployment, max_messages, max_seconds):
        lab = deployment.lab
        password = (lab.node("node1").root / OPENSTACK_PASSWORD.lstrip("/")).read_text()
        super().__init__(lab, {"openstack": password.strip()})
        self.confirmed = ConfirmedIds(self._stop_publishing, max_messages)
        self._timer = threading.Timer(max_seconds, self._stop_publishing.set)
        self._timer.daemon = True

    def __enter__(self):
        self._timer.start()
        super().__enter__()
        self.wait_for_confirms(3, timeout=60)
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        return super().__exit__(*exc)

    def longest_silence(self, since, until):
        """(longest seconds without a confirm between ``since`` and ``until``, confirms then)."""
        times = [t for t in list(self.confirmed.times) if since <= t <= until]
        edges = [since, *times, until]
        gaps = [later - earlier for earlier, later in zip(edges, edges[1:])]
        return max(gaps), len(times)

    def publishing(self):
        return not self._stop_publishing.is_set()


def max_seconds(rounds, round_timeout):
    """How long the clients of a soak of ``rounds`` rounds may run: each round at most
    ``round_timeout`` seconds and its checks, and the start and end."""
    return rounds * (round_timeout + 300) + 300
