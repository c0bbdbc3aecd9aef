"""memcached as a workload: its command line, and what a healthy one answers. Nothing in here
knows OCF.

memcached 1.6 (Debian 12's is 1.6.18) with the options Debian's
``/etc/memcached.conf`` sets (``-m 64 -p 11211 -u memcache -l 127.0.0.1``), less ``-d`` and
``-P``: the agent keeps memcached in the foreground and writes its pid file itself
(``stackha.process.start_daemon``); memcached writes ``-P`` only when it daemonizes. It is
started as root with ``-u``, as Debian's own wrapper does: memcached raises its open-file limit
to fit ``-c`` first (``failed to set rlimit for open files`` otherwise, when ``-c`` is above
the limit it inherits), then drops its supplementary groups and becomes the user before it
serves. ``-U 0``: no UDP listener (1.5.6 and newer default to none; said anyway, since an open
UDP port made memcached an amplifier for reflected denial of service in 2018).

What a healthy one answers, over its text protocol on TCP (``doc/protocol.txt``):

- ``version`` → ``VERSION 1.6.18``: the connection's worker thread answers it without touching
  the cache, so it proves memcached accepts and serves connections;
- ``set`` then ``get`` of a key of the monitor's own with a short expiry → ``STORED``, then the
  same value back: what oslo.cache asks of it, through the hash table, the slab allocator and
  the LRU locks, which ``version`` never reaches (a lock held forever in them hangs every client
  while ``version`` still answers).

The checks open a plain socket (the monitor path imports nothing heavy) and take one timeout
for the whole exchange.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Callable


PROCESS_NAME = "memcached"
PORT = 11211
# An answer is a few lines; one that grows past this is not memcached's.
ANSWER_MAX_BYTES = 65536
# How long the deep check's own item lives: long enough to read it back, short enough that it
# never takes room from the cache for long.
CHECK_ITEM_EXPIRY_S = 30
CHECK_KEY = "stackha:monitor"
# Where the start-up error memcached prints may be found: the end of its output file.
OUTPUT_TAIL_BYTES = 4096


class MemcachedError(Exception):
    """memcached does not answer, or answers something else than memcached would; the message
    says which, in one line."""


def listen_argument(address: str) -> str:
    """``-l``'s value for ``address``: an IPv6 address in brackets (memcached reads a colon
    outside brackets as the start of a port)."""
    return f"[{address}]" if ":" in address else address


def command(
    binary: str, user: str, address: str, port: int, memory_mb: int, max_connections: int
) -> list[str]:
    """memcached's command line, in the foreground (no ``-d``, no ``-P``: see the module)."""
    return [
        binary,
        "-u",
        user,
        "-l",
        listen_argument(address),
        "-p",
        str(port),
        "-U",
        "0",
        "-m",
        str(memory_mb),
        "-c",
        str(max_connections),
    ]


def server_list(addresses: Iterable[str], port: int = PORT) -> str:
    """oslo.cache's ``memcache_servers`` for memcached on each of ``addresses``:
    ``192.0.2.11:11211,192.0.2.12:11211``; an IPv6 one as ``inet6:[2001:db8::11]:11211``
    (python-memcached, under oslo.cache's memcache_pool backend, reads that form only)."""
    return ",".join(
        f"inet6:[{address}]:{port}" if ":" in address else f"{address}:{port}"
        for address in addresses
    )


def version(host: str, port: int, timeout: float) -> str:
    """memcached's version (``1.6.18``), asked at ``host:port`` within ``timeout`` seconds;
    raises :class:`MemcachedError`."""
    answer = _exchange(host, port, b"version\r\n", lambda data: b"\r\n" in data, timeout)
    line = answer.split(b"\r\n", 1)[0].decode("ascii", "replace")
    word, _, number = line.partition(" ")
    if word != "VERSION" or not number:
        raise MemcachedError(
            f"{_endpoint(host, port)} answered 'version' with {_shown(line)}, not VERSION"
        )
    return number


def store_and_read(host: str, port: int, value: str, timeout: float) -> None:
    """Store ``value`` (ASCII without spaces) under the monitor's own key for
    CHECK_ITEM_EXPIRY_S seconds and read it back, within ``timeout`` seconds in all; raises
    :class:`MemcachedError` naming what memcached answered instead."""
    data = value.encode("ascii")
    request = (
        f"set {CHECK_KEY} 0 {CHECK_ITEM_EXPIRY_S} {len(data)}\r\n".encode()
        + data
        + f"\r\nget {CHECK_KEY}\r\n".encode()
    )
    # The value is hex and the key fixed: "ERROR" (ERROR, CLIENT_ERROR, SERVER_ERROR) in the
    # answer can only be memcached refusing a command. A refused set still ends the get's END.
    answer = _exchange(
        host, port, request, lambda got: got.endswith(b"END\r\n") or b"ERROR" in got, timeout
    )
    lines = answer.decode("ascii", "replace").split("\r\n")
    where = _endpoint(host, port)
    if lines[0] != "STORED":
        raise MemcachedError(f"{where} answered 'set' with {_shown(lines[0])}, not STORED")
    if lines[1:4] != [f"VALUE {CHECK_KEY} 0 {len(data)}", value, "END"]:
        raise MemcachedError(
            f"{where} did not give back the item it stored: 'get' answered "
            f"{_shown(' '.join(lines[1:4]))}"
        )


def last_output_line(path: str) -> str:
    """The last line memcached wrote to its output file (why it exited: ``failed to set rlimit
    for open files``, ``can't find the user x to switch to``), or "" when there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(size - OUTPUT_TAIL_BYTES, 0))
            tail = handle.read(OUTPUT_TAIL_BYTES)
    except OSError:
        return ""
    lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines()]
    found = [line for line in lines if line]
    return found[-1][:200] if found else ""


def _exchange(
    host: str, port: int, request: bytes, complete: Callable[[bytes], bool], timeout: float
) -> bytes:
    """Send ``request`` and read until ``complete(answer)``, the whole within ``timeout``."""
    import socket  # only monitors of depth 10 and more, and start, pay for it
    import time

    end = time.monotonic() + timeout
    answer = b""
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.001)) as conn:
            conn.sendall(request)
            while not complete(answer) and len(answer) <= ANSWER_MAX_BYTES:
                conn.settimeout(max(end - time.monotonic(), 0.001))
                chunk = conn.recv(4096)
                if not chunk:
                    raise MemcachedError(
                        f"{_endpoint(host, port)} closed the connection after "
                        f"{_shown(answer.decode('ascii', 'replace'))}"
                    )
                answer += chunk
    except OSError as err:
        raise MemcachedError(
            f"{_endpoint(host, port)} does not answer: {_why(err, timeout)}"
        ) from None
    return answer


def _endpoint(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"memcached at {shown}:{port}"


def _shown(text: str) -> str:
    """A piece of an answer, quoted and cut, fit for a one-line reason."""
    text = " ".join(text.split())
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _why(err: OSError, timeout: float) -> str:
    import socket

    if isinstance(err, (TimeoutError, socket.timeout)):
        return f"no answer within {timeout:.1f} s"
    return err.strerror or str(err)
