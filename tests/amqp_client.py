"""A small AMQP 0-9-1 client (standard library only) for RabbitMQ soak tests that must prove
"no confirmed message is lost": one connection, one channel, publisher confirms, manual acks.

As a library::

    connection = Connection("127.0.0.1", 5672, "user", "secret")
    channel = connection.channel()
    channel.queue_declare("soak")                # a durable quorum queue
    channel.confirm_select()
    tag = channel.publish("soak", b"1")
    acked, nacked = channel.wait_confirms(5.0)

As a command (long-lived, stopped with SIGTERM)::

    amqp_client.py publish --hosts H1,H2,H3 --port P --queue Q --credentials FILE --out FILE
    amqp_client.py consume --hosts H1,H2,H3 --port P --queue Q --credentials FILE --out FILE

FILE holds ``username=`` and ``password=`` lines, so the password never shows in a process
list. The publisher writes the ids the broker confirmed, the consumer the ids it received: a
confirmed id missing from the consumer's file is a lost message.
"""

from __future__ import annotations

import argparse
import collections
import signal
import socket
import struct
import sys
import time
from typing import Any, NamedTuple

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# Until Tune says otherwise; RabbitMQ's own default, well above its Start frame.
INITIAL_FRAME_MAX = 131072
CHANNEL = 1

METHOD_NAMES = {
    (10, 10): "Connection.Start",
    (10, 30): "Connection.Tune",
    (10, 41): "Connection.OpenOk",
    (10, 50): "Connection.Close",
    (10, 51): "Connection.CloseOk",
    (20, 11): "Channel.OpenOk",
    (20, 40): "Channel.Close",
    (50, 11): "Queue.DeclareOk",
    (60, 11): "Basic.QosOk",
    (60, 21): "Basic.ConsumeOk",
    (60, 30): "Basic.Cancel",
    (60, 60): "Basic.Deliver",
    (60, 80): "Basic.Ack",
    (60, 120): "Basic.Nack",
    (85, 11): "Confirm.SelectOk",
}


class AmqpError(Exception):
    """The connection or channel is unusable: socket error, timeout, protocol violation, or a
    close from the server (its reply code and text are in the message)."""


class DeclareOk(NamedTuple):
    queue: str
    message_count: int
    consumer_count: int


def method_name(key: tuple[int, int]) -> str:
    return METHOD_NAMES.get(key, f"method {key[0]}.{key[1]}")


# --- encoding ---------------------------------------------------------------------------------


def shortstr(value: str) -> bytes:
    data = value.encode()
    if len(data) > 255:
        raise ValueError(f"short string longer than 255 bytes: {value[:40]!r}...")
    return struct.pack(">B", len(data)) + data


def longstr(value: bytes) -> bytes:
    return struct.pack(">L", len(value)) + value


def field_value(value: Any) -> bytes:
    # bool before int: True is an int too, and the broker tells 't' from 'I' apart.
    if isinstance(value, bool):
        return b"t" + struct.pack(">B", value)
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + struct.pack(">i", value)
        return b"l" + struct.pack(">q", value)
    if isinstance(value, str):
        return b"S" + longstr(value.encode())
    if isinstance(value, bytes):
        return b"x" + longstr(value)
    if isinstance(value, dict):
        return b"F" + table(value)
    raise TypeError(f"cannot encode {type(value).__name__} in an AMQP field table")


def table(values: dict[str, Any]) -> bytes:
    body = b"".join(shortstr(key) + field_value(value) for key, value in values.items())
    return longstr(body)


def bits(*flags: bool) -> bytes:
    return struct.pack(">B", sum(1 << index for index, flag in enumerate(flags) if flag))


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHL", kind, channel, len(payload)) + payload + bytes([FRAME_END])


# --- decoding ---------------------------------------------------------------------------------


# RabbitMQ's field types (its errata to the 0-9-1 spec, which it follows) of fixed size.
FIXED_FIELDS = {
    b"t": ">?",
    b"b": ">b",
    b"B": ">B",
    b"s": ">h",
    b"u": ">H",
    b"I": ">i",
    b"i": ">I",
    b"l": ">q",
    b"T": ">Q",
    b"f": ">f",
    b"d": ">d",
}


class Reader:
    """Arguments of one method frame, read in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def raw(self, length: int) -> bytes:
        if self.at + length > len(self.data):
            raise struct.error("field runs past the end of the frame")
        value = self.data[self.at : self.at + length]
        self.at += length
        return value

    def shortstr(self) -> str:
        return self.raw(self.take(">B")).decode(errors="replace")

    def longstr(self) -> bytes:
        return self.raw(self.take(">L"))

    def table(self) -> dict[str, Any]:
        inner = Reader(self.longstr())
        values = {}
        while inner.at < len(inner.data):
            key = inner.shortstr()
            values[key] = inner.value()
        return values

    def value(self) -> Any:
        kind = self.raw(1)
        if kind in FIXED_FIELDS:
            return self.take(FIXED_FIELDS[kind])
        if kind == b"D":
            scale, unscaled = self.take(">Bi")
            return unscaled / 10**scale
        if kind in (b"S", b"x"):
            return self.longstr()
        if kind == b"F":
            return self.table()
        if kind == b"A":
            inner = Reader(self.longstr())
            items = []
            while inner.at < len(inner.data):
                items.append(inner.value())
            return items
        if kind == b"V":
            return None
        raise struct.error(f"unknown field type {kind!r}")


# --- connection -------------------------------------------------------------------------------


class Connection:
    """One AMQP connection. ``timeout`` bounds connecting, each socket write and each wait for
    a reply; ``heartbeat`` is the interval asked for in seconds (0: none)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        vhost: str = "/",
        timeout: float = 5.0,
        heartbeat: int = 0,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.where = f"{host}:{port}"
        self.frame_max = INITIAL_FRAME_MAX
        self.heartbeat = 0
        self._buffer = bytearray()
        self._reply: tuple[int, tuple[int, int], Reader] | None = None
        self._channel: Channel | None = None
        self._closing = False
        # Start of the current stretch in which every read found nothing (None: data came).
        self._quiet_since: float | None = None
        try:
            self._sock: socket.socket | None = socket.create_connection(
                (host, port), timeout=timeout
            )
        except OSError as exc:
            raise AmqpError(f"connecting to {self.where}: {exc}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._last_sent = time.monotonic()
        try:
            self._handshake(username, password, vhost, heartbeat)
        except BaseException:
            self._drop()
            raise

    def _handshake(self, username: str, password: str, vhost: str, heartbeat: int) -> None:
        self._send(PROTOCOL_HEADER)
        start = self._expect(0, (10, 10), "waiting for Connection.Start")
        major, minor = start.take(">BB")
        start.table()
        mechanisms = start.longstr().split()
        if (major, minor) != (0, 9) or b"PLAIN" not in mechanisms:
            raise AmqpError(
                f"{self.where} speaks AMQP {major}-{minor} with mechanisms {mechanisms!r}, "
                "not 0-9 with PLAIN"
            )
        properties = {
            "product": "stackha amqp_client",
            # Without this capability RabbitMQ answers a failed login by dropping the socket;
            # with it, a Connection.Close that says ACCESS_REFUSED.
            "capabilities": {
                "authentication_failure_close": True,
                "consumer_cancel_notify": True,
                "publisher_confirms": True,
            },
        }
        response = b"\0" + username.encode() + b"\0" + password.encode()
        self._send_method(
            0, 10, 11, table(properties) + shortstr("PLAIN") + longstr(response) + shortstr("en_US")
        )
        tune = self._expect(0, (10, 30), "logging in")
        channel_max, frame_max, server_heartbeat = tune.take(">HLH")
        self.frame_max = min(frame_max or INITIAL_FRAME_MAX, INITIAL_FRAME_MAX)
        # Our request wins when it is 0 (no heartbeats at all) or shorter than the server's.
        self.heartbeat = min(heartbeat, server_heartbeat) if server_heartbeat else heartbeat
        self._send_method(
            0, 10, 31, struct.pack(">HLH", channel_max, self.frame_max, self.heartbeat)
        )
        self._send_method(0, 10, 40, shortstr(vhost) + shortstr("") + bits(False))
        self._expect(0, (10, 41), f"opening vhost {vhost!r}")

    def channel(self) -> Channel:
        """Open channel 1 (again, after the server closed it)."""
        if self._channel is not None and self._channel.closed is None:
            raise AmqpError("channel 1 is already open")
        self._channel = Channel(self)
        self._send_method(CHANNEL, 20, 10, shortstr(""))
        self._expect(CHANNEL, (20, 11), "opening channel 1")
        return self._channel

    def close(self, timeout: float | None = None) -> None:
        """Close politely if the connection still works (waiting at most ``timeout``, default
        the connection's), then drop the socket; never raises, so it is safe in cleanup."""
        if self._sock is None:
            return
        self._closing = True
        try:
            self._send_method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + b"\0" * 4)
            self._expect(0, (10, 51), "closing", timeout)
        except AmqpError:
            pass
        finally:
            self._drop()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- frames -------------------------------------------------------------------------------

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _fail(self, message: str) -> AmqpError:
        self._drop()
        return AmqpError(message)

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise AmqpError(f"connection to {self.where} is closed")
        try:
            self._sock.settimeout(self.timeout)
            self._sock.sendall(data)
        except OSError as exc:
            raise self._fail(f"sending to {self.where}: {exc or type(exc).__name__}") from None
        self._last_sent = time.monotonic()

    def _send_method(self, channel: int, class_id: int, method_id: int, args: bytes) -> None:
        self._send(frame(FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id) + args))

    def _fill(self, deadline: float) -> bool:
        """Read more bytes from the socket; False if the deadline passed first."""
        while self._sock is not None:
            now = time.monotonic()
            wait = deadline - now
            if wait <= 0:
                return False
            if self.heartbeat:
                # Heartbeats go out only while some call waits here: the library has no thread.
                if now - self._last_sent >= self.heartbeat / 2:
                    self._send(frame(FRAME_HEARTBEAT, 0, b""))
                wait = min(wait, self.heartbeat / 2)
            try:
                self._sock.settimeout(wait)
                data = self._sock.recv(65536)
            except socket.timeout:
                self._silence(now)
                continue
            except OSError as exc:
                raise self._fail(f"receiving from {self.where}: {exc}") from None
            if not data:
                raise self._fail(f"{self.where} closed the connection")
            self._buffer += data
            self._quiet_since = None
            return True
        raise AmqpError(f"connection to {self.where} is closed")

    def _silence(self, read_started: float) -> None:
        # Anything the server sent since the first empty read would have been read since, so
        # the silence spans calls; a gap between calls (nobody reading) cannot fake one.
        if self._quiet_since is None:
            self._quiet_since = read_started
        if self.heartbeat and time.monotonic() - self._quiet_since > 2 * self.heartbeat:
            raise self._fail(f"{self.where} sent nothing for {2 * self.heartbeat} s (heartbeat)")

    def _read_frame(self, deadline: float) -> tuple[int, int, bytes] | None:
        # Frames are cut out of a buffer, so a timeout halfway through one loses nothing.
        while True:
            if self._buffer.startswith(b"AMQP"):
                header = bytes(self._buffer[:8])
                raise self._fail(f"{self.where} refused AMQP 0-9-1, offering {header!r}")
            if len(self._buffer) >= 7:
                kind, channel, size = struct.unpack_from(">BHL", self._buffer)
                if size > self.frame_max:
                    raise self._fail(
                        f"{self.where} sent a {size}-byte frame (max {self.frame_max})"
                    )
                if len(self._buffer) >= size + 8:
                    if self._buffer[size + 7] != FRAME_END:
                        raise self._fail(f"{self.where} sent a frame with a bad end marker")
                    payload = bytes(self._buffer[7 : size + 7])
                    del self._buffer[: size + 8]
                    return kind, channel, payload
            if not self._fill(deadline):
                return None

    def _pump(self, deadline: float) -> bool:
        """Read and handle one frame; False if the deadline passed first."""
        read = self._read_frame(deadline)
        if read is None:
            return False
        kind, channel, payload = read
        try:
            if kind == FRAME_HEARTBEAT:
                return True
            if channel == CHANNEL and self._channel is not None:
                if kind == FRAME_METHOD:
                    class_id, method_id = struct.unpack_from(">HH", payload)
                    if self._channel._handle((class_id, method_id), Reader(payload[4:])):
                        return True
                    self._set_reply(channel, (class_id, method_id), Reader(payload[4:]))
                else:
                    self._channel._content(kind, payload)
                return True
            if kind != FRAME_METHOD:
                raise self._fail(f"{self.where} sent an unexpected frame type {kind} on {channel}")
            class_id, method_id = struct.unpack_from(">HH", payload)
            args = Reader(payload[4:])
            if channel == 0 and (class_id, method_id) == (10, 50):
                code, text = args.take(">H"), args.shortstr()
                if not self._closing:
                    try:
                        self._send_method(0, 10, 51, b"")
                    except AmqpError:
                        pass
                raise self._fail(f"{self.where} closed the connection: {code} {text}")
            if channel == 0 and (class_id, method_id) in ((10, 60), (10, 61)):
                return True  # Connection.Blocked/Unblocked: confirms time out meanwhile anyway
            self._set_reply(channel, (class_id, method_id), args)
            return True
        except struct.error as exc:
            raise self._fail(f"{self.where} sent a malformed frame: {exc}") from None

    def _set_reply(self, channel: int, key: tuple[int, int], args: Reader) -> None:
        if self._reply is not None:
            raise self._fail(f"{self.where} sent {method_name(key)} on channel {channel} unasked")
        self._reply = (channel, key, args)

    def _expect(
        self, channel: int, key: tuple[int, int], doing: str, timeout: float | None = None
    ) -> Reader:
        """Wait for the reply ``key`` on ``channel``; anything else in its place is an error."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self._reply is None:
            if not self._pump(deadline):
                raise self._fail(
                    f"timed out after {timeout} s {doing} on {self.where} (no {method_name(key)})"
                )
        got_channel, got, args = self._reply
        self._reply = None
        if (got_channel, got) != (channel, key):
            raise self._fail(
                f"{self.where} sent {method_name(got)} on channel {got_channel} {doing}, "
                f"expected {method_name(key)}"
            )
        return args


class Channel:
    """Channel 1 of a Connection. Deliveries and confirms that arrive while waiting for
    something else are kept until asked for."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.closed: str | None = None
        self.confirming = False
        self._next_tag = 1
        self._unconfirmed: set[int] = set()
        self._acked: set[int] = set()
        self._nacked: set[int] = set()
        self._deliveries: collections.deque[tuple[int, bytes]] = collections.deque()
        self._incoming: Incoming | None = None

    def queue_declare(
        self, name: str, durable: bool = True, arguments: dict[str, Any] | None = None
    ) -> DeclareOk:
        """Declare ``name``; ``arguments`` default to a quorum queue ({} for a classic one)."""
        if arguments is None:
            arguments = {"x-queue-type": "quorum"}
        args = struct.pack(">H", 0) + shortstr(name) + bits(False, durable, False, False, False)
        reply = self._call(50, 10, args + table(arguments), (50, 11), f"declaring queue {name!r}")
        queue = reply.shortstr()
        message_count, consumer_count = reply.take(">LL")
        return DeclareOk(queue, message_count, consumer_count)

    def confirm_select(self) -> None:
        """Publisher confirms from now on; delivery tags count from 1."""
        self._call(85, 10, bits(False), (85, 11), "selecting confirms")
        self.confirming = True

    def qos(self, prefetch_count: int) -> None:
        self._call(60, 10, struct.pack(">LH", 0, prefetch_count) + bits(False), (60, 11), "qos")

    def consume(self, queue: str) -> str:
        """Start consuming ``queue`` with manual acks; returns the server's consumer tag."""
        args = struct.pack(">H", 0) + shortstr(queue) + shortstr("")
        args += bits(False, False, False, False) + table({})
        return self._call(60, 20, args, (60, 21), f"consuming {queue!r}").shortstr()

    def publish(self, routing_key: str, body: bytes, persistent: bool = True) -> int:
        """Publish to the default exchange; returns the delivery tag the confirm will carry (0
        without confirm_select)."""
        self._check_open()
        connection = self.connection
        method = struct.pack(">HHH", 60, 40, 0) + shortstr("") + shortstr(routing_key)
        method += bits(False, False)
        # Property flags: only delivery-mode (bit 12); 2 is persistent.
        header = struct.pack(">HHQHB", 60, 0, len(body), 1 << 12, 2 if persistent else 1)
        chunk = connection.frame_max - 8
        frames = [frame(FRAME_METHOD, CHANNEL, method), frame(FRAME_HEADER, CHANNEL, header)]
        frames += [
            frame(FRAME_BODY, CHANNEL, body[at : at + chunk]) for at in range(0, len(body), chunk)
        ]
        # One write: a content's frames must not be interleaved with anything else.
        connection._send(b"".join(frames))
        if not self.confirming:
            return 0
        tag = self._next_tag
        self._next_tag += 1
        self._unconfirmed.add(tag)
        return tag

    def wait_confirms(self, timeout: float) -> tuple[set[int], set[int]]:
        """Wait until every published message is acked or nacked, or ``timeout`` passes.
        Returns (acked, nacked): the tags confirmed since the previous call, so that a
        long-running publisher does not accumulate every tag it ever sent."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed and self.connection._pump(deadline):
            self._check_open()
        self._check_open()
        acked, nacked = self._acked, self._nacked
        self._acked, self._nacked = set(), set()
        return acked, nacked

    def next_delivery(self, timeout: float) -> tuple[int, bytes] | None:
        """The next (delivery tag, body), or None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._deliveries:
            self._check_open()
            if not self.connection._pump(deadline):
                return None
        return self._deliveries.popleft()

    def ack(self, delivery_tag: int) -> None:
        self._check_open()
        self.connection._send_method(CHANNEL, 60, 80, struct.pack(">Q", delivery_tag) + bits(False))

    # --- internals ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed is not None:
            raise AmqpError(self.closed)

    def _call(
        self, class_id: int, method_id: int, args: bytes, reply: tuple[int, int], doing: str
    ) -> Reader:
        self._check_open()
        self.connection._send_method(CHANNEL, class_id, method_id, args)
        return self.connection._expect(CHANNEL, reply, doing)

    def _handle(self, key: tuple[int, int], args: Reader) -> bool:
        """Handle an asynchronous method; False if it is a reply for _expect."""
        where = self.connection.where
        if self._incoming is not None:
            raise self.connection._fail(f"{where} sent {method_name(key)} inside a content")
        if key in ((60, 80), (60, 120)):
            tag, flags = args.take(">QB")
            self._confirm(tag, bool(flags & 1), self._acked if key == (60, 80) else self._nacked)
        elif key == (60, 60):
            args.shortstr()  # consumer tag: there is only one consumer
            self._incoming = Incoming(args.take(">Q"))
        elif key == (60, 50):
            self._incoming = Incoming(None)  # Basic.Return: nothing here publishes mandatory
        elif key == (20, 40):
            code, text = args.take(">H"), args.shortstr()
            self.closed = f"{where} closed channel 1: {code} {text}"
            self.connection._send_method(CHANNEL, 20, 41, b"")
            raise AmqpError(self.closed)
        elif key == (60, 30):
            self.closed = f"{where} cancelled the consumer (queue deleted or moved?)"
            raise AmqpError(self.closed)
        elif key == (20, 20):
            self.connection._send_method(CHANNEL, 20, 21, args.raw(1))  # Flow: agree to it
        else:
            return False
        return True

    def _confirm(self, tag: int, multiple: bool, into: set[int]) -> None:
        if multiple:
            # Tag 0 with multiple means "everything outstanding".
            done = {each for each in self._unconfirmed if tag == 0 or each <= tag}
        else:
            done = {tag} & self._unconfirmed
        self._unconfirmed -= done
        into |= done

    def _content(self, kind: int, payload: bytes) -> None:
        where = self.connection.where
        incoming = self._incoming
        if incoming is None or (kind == FRAME_HEADER) != (incoming.size is None):
            raise self.connection._fail(f"{where} sent an unexpected frame type {kind}")
        if kind == FRAME_HEADER:
            incoming.size = struct.unpack_from(">Q", payload, 4)[0]
        elif kind == FRAME_BODY:
            incoming.parts.append(payload)
            incoming.received += len(payload)
        else:
            raise self.connection._fail(f"{where} sent an unexpected frame type {kind}")
        if incoming.received > incoming.size:
            raise self.connection._fail(f"{where} sent a body longer than its header said")
        if incoming.received == incoming.size:
            self._incoming = None
            if incoming.tag is not None:
                self._deliveries.append((incoming.tag, b"".join(incoming.parts)))


class Incoming:
    """A content being received: a delivery (its tag) or a Basic.Return (tag None)."""

    def __init__(self, tag: int | None) -> None:
        self.tag = tag
        self.size: int | None = None
        self.parts: list[bytes] = []
        self.received = 0


# --- command line -----------------------------------------------------------------------------


class Stop(BaseException):
    """SIGTERM arrived during an interruptible wait (a BaseException so no error handler
    mistakes it for a lost connection)."""


class Signals:
    """SIGTERM sets ``stopping``; it interrupts only the waits marked interruptible, never the
    write of an id or an ack, so both files stay truthful."""

    def __init__(self) -> None:
        self.stopping = False
        self.interruptible = False
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.stopping = True
        if self.interruptible:
            self.interruptible = False
            raise Stop

    def wait(self, function: Any, *args: Any) -> Any:
        self.interruptible = True
        try:
            if self.stopping:
                raise Stop
            return function(*args)
        finally:
            self.interruptible = False


def read_credentials(path: str) -> tuple[str, str]:
    values = {}
    with open(path) as handle:
        for line in handle:
            key, sep, value = line.rstrip("\r\n").partition("=")
            if sep and key.strip() in ("username", "password"):
                values[key.strip()] = value
    if set(values) != {"username", "password"}:
        raise SystemExit(f"{path}: needs username= and password= lines")
    return values["username"], values["password"]


# The consumer only reads, so without heartbeats a silently dead link would stall it forever.
HEARTBEAT = 5


class Session:
    """Round robin over the hosts: connect, declare the queue, report each change on stderr."""

    def __init__(self, options: argparse.Namespace, signals: Signals) -> None:
        self.hosts = [host for host in options.hosts.split(",") if host]
        self.port, self.queue = options.port, options.queue
        self.username, self.password = read_credentials(options.credentials)
        self.signals = signals
        self.index = 0
        self.connection: Connection | None = None

    def open(self) -> Channel:
        while True:
            host = self.hosts[self.index]
            try:
                connection = self.signals.wait(
                    Connection,
                    host,
                    self.port,
                    self.username,
                    self.password,
                    "/",
                    5.0,
                    HEARTBEAT,
                )
            except AmqpError as exc:
                log(f"cannot connect: {exc}")  # the error names the host
                self.next_host()
                continue
            self.connection = connection
            log(f"connected to {host}")
            try:
                channel = self.signals.wait(connection.channel)
                self.signals.wait(channel.queue_declare, self.queue)
            except AmqpError as exc:
                self.lost(exc)
                continue
            return channel

    def lost(self, reason: object) -> None:
        log(f"lost {self.hosts[self.index]}: {reason}")
        self.close()
        self.next_host()

    def next_host(self) -> None:
        self.index = (self.index + 1) % len(self.hosts)
        self.signals.wait(time.sleep, 0.2)

    def close(self) -> None:
        if self.connection is not None:
            # Short: a stop must not wait out a dead link's full timeout.
            self.connection.close(timeout=1.0)
            self.connection = None


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_publisher(session: Session, out: Any, start: int) -> None:
    message_id = start
    channel = None
    while not session.signals.stopping:
        sent = False
        try:
            if channel is None:
                channel = session.open()
                session.signals.wait(channel.confirm_select)
            # Not interruptible: a stop waits for the confirm of the id in flight.
            sent = True
            tag = channel.publish(session.queue, str(message_id).encode())
            acked, nacked = channel.wait_confirms(5.0)
            if tag in acked:
                out.write(f"{message_id}\n")
                out.flush()
            else:
                raise AmqpError("nacked" if tag in nacked else "no confirm within 5 s")
        except AmqpError as exc:
            session.lost(exc)
            channel = None
        # An id once sent is never resent: unconfirmed, it may or may not have been delivered.
        if sent:
            message_id += 1


def run_consumer(session: Session, out: Any) -> None:
    channel = None
    while not session.signals.stopping:
        try:
            if channel is None:
                channel = session.open()
                session.signals.wait(channel.qos, 100)
                session.signals.wait(channel.consume, session.queue)
            delivery = session.signals.wait(channel.next_delivery, 1.0)
            if delivery is not None:
                # Written before the ack: a crash in between gives a duplicate, never a loss.
                out.write(delivery[1].decode() + "\n")
                out.flush()
                channel.ack(delivery[0])
        except AmqpError as exc:
            session.lost(exc)
            channel = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("publish", "consume"):
        command = commands.add_parser(name)
        command.add_argument("--hosts", required=True, help="comma-separated, tried in turn")
        command.add_argument("--port", type=int, default=5672)
        command.add_argument("--queue", required=True)
        command.add_argument("--credentials", required=True, help="username=/password= lines")
        command.add_argument("--out", required=True, help="ids are appended here")
        if name == "publish":
            command.add_argument("--start", type=int, default=1, help="first id (default 1)")
    options = parser.parse_args(argv)
    if not [host for host in options.hosts.split(",") if host]:
        parser.error("--hosts names no host")
    signals = Signals()
    session = Session(options, signals)
    with open(options.out, "a") as out:
        try:
            if options.command == "publish":
                run_publisher(session, out, options.start)
            else:
                run_consumer(session, out)
        except Stop:
            pass
        finally:
            session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
