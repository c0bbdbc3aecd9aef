"""Fakes at the runner/clock/process boundary: they hold exactly what is expected."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

from stackha.runner import CommandError, CommandTimedOut, Result, Spawn


@dataclass
class Expected:
    argv: tuple[str, ...]
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""
    stdin: Optional[str] = None
    timed_out: bool = False  # the command overran its timeout (the real runner kills it)


class FakeRunner:
    """Plays back expected commands in order; anything else fails the test.

    Use ``expect(argv, ...)`` for each command, then ``assert_done()`` (the ``fake_runner``
    fixture does it for you) so a leftover expectation fails too.
    """

    def __init__(self) -> None:
        self.expected: list[Expected] = []
        self.spawned: list[Spawn] = []
        self.next_pid = 4000

    def expect(
        self,
        argv: Sequence[str],
        returncode: int = 0,
        stdout: str = "",
        stderr: str = "",
        stdin: Optional[str] = None,
        timed_out: bool = False,
    ) -> None:
        self.expected.append(Expected(tuple(argv), returncode, stdout, stderr, stdin, timed_out))

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        stdin: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        check: bool = False,
    ) -> Result:
        assert timeout > 0, f"no time budget for {argv}"
        assert self.expected, f"unexpected command: {list(argv)}"
        want = self.expected.pop(0)
        assert tuple(argv) == want.argv, f"expected {list(want.argv)}, got {list(argv)}"
        assert stdin == want.stdin, f"stdin for {argv[0]}: expected {want.stdin!r}, got {stdin!r}"
        if want.timed_out:
            raise CommandTimedOut(f"{argv[0]} did not finish within {timeout:.0f}s")
        result = Result(tuple(argv), want.returncode, want.stdout, want.stderr)
        if check and not result.ok:
            raise CommandError(f"{argv[0]} failed (exit {result.returncode})", result)
        return result

    def spawn(self, spec: Spawn) -> int:
        self.spawned.append(spec)
        self.next_pid += 1
        return self.next_pid

    def assert_done(self) -> None:
        assert not self.expected, f"expected commands never ran: {[e.argv for e in self.expected]}"


class FakeClock:
    """Time that passes only when the code sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


@dataclass
class FakeProcess:
    name: str
    state: str = "S"
    children: list[int] = field(default_factory=list)
    # Signals after which the process exits, and how many seconds later.
    dies_on: dict[int, float] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)  # its command line
    local: bool = True  # in the caller's mount namespace


class FakeProcessTable:
    """A process table whose processes die on the signals they are told to, on a fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.processes: dict[int, FakeProcess] = {}
        self.signals: list[tuple[int, int, float]] = []
        self._deaths: dict[int, float] = {}

    def add(self, pid: int, process: FakeProcess) -> None:
        self.processes[pid] = process

    def _reap(self) -> None:
        for pid, when in list(self._deaths.items()):
            if self.clock.now >= when:
                self.processes.pop(pid, None)
                del self._deaths[pid]

    def state(self, pid: int) -> Optional[str]:
        self._reap()
        process = self.processes.get(pid)
        return process.state if process else None

    def name(self, pid: int) -> Optional[str]:
        self._reap()
        process = self.processes.get(pid)
        return process.name if process else None

    def children(self, pid: int) -> list[int]:
        self._reap()
        process = self.processes.get(pid)
        return [c for c in process.children if c in self.processes] if process else []

    def pids(self) -> list[int]:
        self._reap()
        return sorted(self.processes)

    def arguments(self, pid: int) -> list[str]:
        self._reap()
        process = self.processes.get(pid)
        return list(process.arguments) if process else []

    def local(self, pid: int) -> bool:
        process = self.processes.get(pid)
        return bool(process and process.local)

    def signal(self, pid: int, signum: int) -> None:
        self._reap()
        self.signals.append((pid, signum, self.clock.now))
        process = self.processes.get(pid)
        if process is None:
            return
        if signum in process.dies_on:
            when = self.clock.now + process.dies_on[signum]
            self._deaths[pid] = min(when, self._deaths.get(pid, when))
        elif signum == signal.SIGKILL:
            self._deaths[pid] = self.clock.now


class FakeHttpServer:
    """A real HTTP server on 127.0.0.1, for code at the HTTP boundary (management APIs,
    OpenStack APIs): canned answers by (method, path with its query) — a (status, headers,
    body) tuple, or a function returning one, read at each request —, 404 for anything else,
    401 without the ``basic_auth`` credentials when given, and every request it got as
    (method, path, headers, body). It listens on ``port`` (a free one when 0: a test that
    needs the port known before anything listens on it picks one with
    ``agent_runs.free_port``). ``close()`` stops it."""

    def __init__(self, basic_auth: Optional[tuple[str, str]] = None, port: int = 0) -> None:
        import base64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers: dict[tuple[str, str], object] = {}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        expected = (
            "Basic " + base64.b64encode(":".join(basic_auth).encode()).decode()
            if basic_auth
            else None
        )
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                if expected and self.headers.get("Authorization") != expected:
                    status, headers, text = 401, {}, ""
                else:
                    found = fake.answers.get((self.command, self.path), (404, {}, ""))
                    status, headers, text = found() if callable(found) else found
                data = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeMemcached:
    """memcached's text protocol on 127.0.0.1 (``version``, ``set``, ``get``), for code at the
    memcached boundary. ``answers`` replaces a command's answer (by its first word): bytes, or
    None to read the command and never answer. Every command line it got is in ``commands``
    (a set's data block too, as the next entry). It listens on ``port`` (a free one when 0);
    ``close()`` stops it."""

    def __init__(self, port: int = 0, version: str = "1.6.18") -> None:
        import socketserver
        import threading

        self.items: dict[bytes, tuple[bytes, bytes]] = {}  # key -> (flags, data)
        self.commands: list[str] = []
        self.answers: dict[str, Optional[bytes]] = {}
        self.closed = threading.Event()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while not fake.closed.is_set():
                    line = self.rfile.readline()
                    if not line:
                        return
                    words = line.split()
                    fake.commands.append(line.decode("ascii", "replace").rstrip("\r\n"))
                    if words[:1] == [b"set"] and len(words) == 5:
                        data = self.rfile.read(int(words[4]) + 2)[:-2]
                        fake.commands.append(data.decode("ascii", "replace"))
                    word = words[0].decode("ascii", "replace") if words else ""
                    if word in fake.answers:
                        answer = fake.answers[word]
                        if answer is None:
                            fake.closed.wait(30)  # read, never answered
                            return
                        self.wfile.write(answer)
                    elif word == "version":
                        self.wfile.write(f"VERSION {version}\r\n".encode())
                    elif word == "set" and len(words) == 5:
                        fake.items[words[1]] = (words[2], data)
                        self.wfile.write(b"STORED\r\n")
                    elif word == "get" and len(words) == 2:
                        if words[1] in fake.items:
                            flags, value = fake.items[words[1]]
                            self.wfile.write(
                                b"VALUE %s %s %d\r\n%s\r\n" % (words[1], flags, len(value), value)
                            )
                        self.wfile.write(b"END\r\n")
                    else:
                        self.wfile.write(b"ERROR\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()
