"""The database path (stackha.services.haproxy.galera_listen) in a real HAProxy on loopback:
one writer at a time, whatever the servers do.

Three TCP servers stand in for the Galera nodes; each counts the connections it holds open,
which is what a writer is to Galera: a session that can certify a transaction. The health
check is a script that says what a file says, so a test decides when HAProxy's check sees a
server fail, apart from what the server's socket does (mariadbd restarting refuses connects
before stackha-galera-check has run again)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from agent_runs import free_port
from stack_checks import proxy_servers
from stackha.services import haproxy

# Another HAProxy than the host's, e.g. a wrapper that runs a Debian 13 tree's in a chroot.
HAPROXY = os.environ.get("STACKHA_HAPROXY", "/usr/sbin/haproxy")
FRONT = "127.0.0.10"
SERVERS = (("s1", "127.0.0.11"), ("s2", "127.0.0.12"), ("s3", "127.0.0.13"))
# galera_listen's check: every 2 s, down after 2 failures, up after 2 successes.
MARKED = 2 * 2 + 2


class Server:
    """A listening socket on (address, port) that greets each connection with its name and
    holds it open until the peer closes it."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name, self.address, self.port = name, address, port
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.listen()

    def listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.address, self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        """Close the listening socket: connects are refused (RST) until listen()."""
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def sessions(self) -> int:
        with self.lock:
            return len(self.open)

    def close(self) -> None:
        self.refuse()
        with self.lock:
            for conn in self.open:
                conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.open.add(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        try:
            conn.sendall(self.name.encode() + b"\n")
            while conn.recv(4096):
                pass
        except OSError:
            pass
        finally:
            with self.lock:
                self.open.discard(conn)
            conn.close()


class DatabasePath:
    """HAProxy with galera_listen's section in front of the three servers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.servers = {name: Server(name, address, self.port) for name, address in SERVERS}
        self.stats = directory / "admin.sock"
        check = directory / "check"
        # HAProxy runs it as "check <proxy address> <proxy port> <server address> <port>".
        check.write_text(f'#!/bin/sh\ntest -e "{directory}/up-$3"\n')  # a builtin: no PATH
        check.chmod(0o755)
        for server in self.servers:
            self.healthy(server, True)
        config = directory / "haproxy.cfg"
        config.write_text(
            "global\n"
            f"    stats socket {self.stats} mode 600 level admin\n"
            + "".join(f"    {line}\n" for line in haproxy.DATABASE_GLOBAL)
            + "\ndefaults\n    timeout connect 2s\n    timeout client 60s\n"
            "    timeout server 60s\n\n"
            + haproxy.galera_listen(
                FRONT, SERVERS, str(check), port=self.port, table_port=free_port()
            )
        )
        self.process = subprocess.Popen(
            [HAPROXY, "-W", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(directory / "haproxy.log", "wb"),  # noqa: SIM115 - closed with the run
        )
        self.clients: list[socket.socket] = []
        try:
            self.until(lambda: self.states() == {name: "UP" for name in self.servers}, "all UP")
        except BaseException:
            self.close()  # the fixture never gets to: no HAProxy left behind
            raise

    def reload(self) -> None:
        """A seamless reload, as the haproxy agent does it: SIGUSR2 to the master; the old
        worker keeps the sessions it holds."""
        self.process.send_signal(signal.SIGUSR2)

    def healthy(self, server: str, up: bool) -> None:
        """What the check will say of ``server`` from its next run on."""
        flag = self.directory / f"up-{dict(SERVERS)[server]}"
        if up:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def is_healthy(self, server: str) -> bool:
        return (self.directory / f"up-{dict(SERVERS)[server]}").exists()

    def states(self) -> dict[str, str]:
        """{server: UP or DOWN} as HAProxy sees them ({} before its stats socket answers)."""
        assert self.process.poll() is None, (self.directory / "haproxy.log").read_text()
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(5)
                conn.connect(str(self.stats))
                conn.sendall(b"show stat\n")
                answer = b"".join(iter(lambda: conn.recv(65536), b""))
        except (FileNotFoundError, ConnectionRefusedError):
            return {}
        return {
            name: status.split()[0]
            for name, (status, _, _) in proxy_servers(answer.decode(), "galera").items()
        }

    def connect(self) -> str:
        """A client connection through HAProxy, kept open; the name of the server that
        greeted it, or "" when HAProxy closed it without one."""
        client = socket.create_connection((FRONT, self.port), timeout=15)
        self.clients.append(client)
        reply = b""
        try:
            while not reply.endswith(b"\n"):
                chunk = client.recv(64)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        return reply.decode().strip()

    def writers(self) -> list[str]:
        """The servers that hold at least one session open. HAProxy closes the sessions of a
        server it gives up before it sends a connection elsewhere, but the old server's side
        may see that close a moment after the new one accepted: two writers count only if
        they still are a moment later."""
        writers = self._holding()
        if len(writers) > 1:
            time.sleep(0.3)
            writers = self._holding()
        return writers

    def _holding(self) -> list[str]:
        return sorted(name for name, server in self.servers.items() if server.sessions())

    def until(self, condition, what: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < end, f"not within {timeout:.0f} s: {what}"
            time.sleep(0.1)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.process.terminate()
        self.process.wait(10)
        for server in self.servers.values():
            server.close()


@pytest.fixture
def path(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the database path test runs HAProxy's external checks: run it as root")
    database = DatabasePath(tmp_path)
    yield database
    database.close()


def test_a_refused_connect_at_the_writer_leaves_one_writer(path):
    """The sequence a Debian 13 lab showed (docs/templates.md): the writer moves to s2 when s1
    fails, s1 returns, then s2 refuses one connect before its check has seen anything."""
    writer_moved_to_s2(path)
    path.servers["s2"].refuse()
    path.connect()  # refused at s2: fails, or lands on the next writer
    path.servers["s2"].listen()
    for _ in range(3):
        path.connect()
    assert len(path.writers()) == 1, f"two writers: {path.writers()}"


def writer_moved_to_s2(path):
    """s1 fails and its sessions move to s2; s1 comes back, s2 stays the writer."""
    assert path.connect() == "s1"
    path.healthy("s1", False)
    path.until(lambda: path.states()["s1"] == "DOWN", "s1 marked down", MARKED + 5)
    assert path.writers() == [], "the sessions to a server marked down are closed"
    assert path.connect() == "s2"
    path.healthy("s1", True)
    path.until(lambda: path.states()["s1"] == "UP", "s1 marked up", MARKED + 5)
    assert path.connect() == "s2", "a server that comes back does not take the writes"


def test_a_reload_keeps_the_writer(path):
    """The old worker keeps its sessions to the writer after a reload (an operator adding a
    service, or the agent's reload): the new worker must send new ones to the same server."""
    writer_moved_to_s2(path)
    path.reload()
    time.sleep(1)
    for _ in range(3):
        path.connect()
    assert path.writers() == ["s2"]


def test_connections_arriving_together_stay_on_the_writer(path):
    """What a Debian 13 lab showed when keystone's and nova-api's workers opened their pools
    at once: two connects in the same microsecond, one to the writer, one to the first
    server. HAProxy's threads share the stick table; each connect's store holds a new entry
    until it is established, and an allocation into a full table evicts the oldest entry:
    the one that names the writer."""
    writer_moved_to_s2(path)
    for _ in range(15):
        greeted = connect_together(path, 12)
        assert set(greeted) == {"s2"}, f"connections that arrived together went to {greeted}"
    assert path.writers() == ["s2"]


def connect_together(path, count: int) -> list[str]:
    """``count`` connections released at once; the servers that greeted them."""
    start = threading.Barrier(count)
    greeted: list[str] = []

    def connect() -> None:
        start.wait()
        greeted.append(path.connect())

    threads = [threading.Thread(target=connect) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return greeted


def test_one_writer_whatever_the_servers_do(path):
    """A seeded walk (STACKHA_SEED) of checks failing and returning, connects refused and
    clients coming, one by one and several at once: at no moment do two servers hold
    sessions."""
    rng = random.Random(int(os.environ.get("STACKHA_SEED", "2")))
    names = list(path.servers)
    seen = set()
    history: list[str] = []
    for _ in range(12):
        # No reloads: the old worker's sessions do not follow a change of writer made by the new
        # one (docs/templates.md, "Known gap").
        # (clients come between the events anyway)
        event = rng.choice(
            ("check fails", "check passes", "refuses a connect", "clients arrive together")
        )
        # Failures mostly hit the writer (what happens to the others changes nothing) and
        # returns a failed server, so that the writer is often not the first server.
        writer = path.writers()
        failed = sorted(name for name in names if not path.is_healthy(name))
        if writer and event in ("check fails", "refuses a connect") and rng.random() < 0.7:
            server = writer[0]
        elif failed and event == "check passes":
            server = rng.choice(failed)
        else:
            server = rng.choice(names)
        history.append(f"{server} {event}")
        if event == "check fails":
            path.healthy(server, False)
        elif event == "check passes":
            path.healthy(server, True)
        elif event == "refuses a connect":
            path.servers[server].refuse()
            path.connect()
            path.servers[server].listen()
        elif event == "clients arrive together":
            connect_together(path, 8)
        end = time.monotonic() + rng.uniform(0.5, MARKED)
        while time.monotonic() < end:
            path.connect()
            writers = path.writers()
            seen.update(writers)
            assert len(writers) <= 1, f"two writers {writers} after {', '.join(history)}"
            time.sleep(0.25)
    assert seen, "no client ever reached a server"
