"""The one HTTP client of stackha's agents, services and tools: a GET, a PUT without a body, a
request with a JSON body, and the answer whatever its status.

What every monitor does, a plain ``http://`` GET (keystone's ``GET /v3``, nova's ``GET /``,
RabbitMQ's ``GET /api/nodes``, HAProxy's health URL), goes over a plain socket: urllib and
http.client import email, ssl and more, about 30 ms of CPU on every monitor of every node. Only
what needs them (https, a body, a URL with a user in it) imports them, when it is sent.

Every request is made as a probe: no proxy from the environment, no redirect followed, nothing
sent but the headers the caller gives (and Host). No message shows a header, a body, or the user
and password of a URL (:func:`shown_url`).
"""

from __future__ import annotations

from stackha.record import Record

# typing is for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from email.message import Message
    from typing import Optional


class HttpError(Exception):
    """A request that could not be sent, or whose answer is not HTTP. ``reason`` is the why
    alone, without the request (``not an HTTP answer``); the message names the request too."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class NotAUrl(HttpError):
    """The URL is not an ``http://`` or ``https://`` one."""


class NotReachable(HttpError):
    """Nothing answers at the URL (connection refused, reset, or no answer in time)."""


class HttpAnswer(Record):
    """What a server answered, whatever the status. Header names are lower case; a header sent
    more than once has its values joined with ", "."""

    __slots__ = ("status", "headers", "body")
    status: int
    headers: Mapping[str, str]
    body: str

    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        self._freeze(locals())


def shown_url(url: str) -> str:
    """``url`` without a user or password in it, for messages."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    return url


def status_text(status: int) -> str:
    """``503 Service Unavailable``; the number alone for a status HTTP does not name."""
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def basic_authorization(username: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP basic authentication, to pass as ``headers``."""
    import base64

    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def why_failed(error: object, timeout: Optional[float] = None) -> str:
    """A connection's or a read's failure in a few words: ``Connection refused``, ``no answer
    within 5.0 s`` (how long it waited: with a monitor's budget that is no fixed few seconds)."""
    import socket

    if isinstance(error, (TimeoutError, socket.timeout)):
        return "no answer in time" if timeout is None else f"no answer within {timeout:.1f} s"
    if isinstance(error, OSError) and error.strerror:
        return str(error.strerror)
    return str(error) or type(error).__name__


def get(url: str, timeout: float, headers: Optional[Mapping[str, str]] = None) -> HttpAnswer:
    """``GET url``. Any HTTP status is an answer.

    Raises :class:`NotReachable` when nothing answers in ``timeout`` seconds (for a plain
    ``http://`` URL, the whole answer; else the connection and each read), :class:`NotAUrl`
    for what is not an http(s) URL, :class:`HttpError` for an answer that is not HTTP.
    """
    if url.startswith("http://") and "@" not in url.partition("//")[2].partition("/")[0]:
        return _plain_get(url, dict(headers or {}), timeout)
    return _request("GET", url, None, dict(headers or {}), timeout)


def put(url: str, timeout: float, headers: Optional[Mapping[str, str]] = None) -> HttpAnswer:
    """``PUT url`` with no body (Keystone's role assignment is one); as :func:`get` otherwise."""
    return _request("PUT", url, None, dict(headers or {}), timeout)


def send_json(
    method: str,
    url: str,
    body: object,
    timeout: float,
    headers: Optional[Mapping[str, str]] = None,
) -> HttpAnswer:
    """``method url`` (POST, PATCH...) with ``body`` as JSON, asking for JSON back; as
    :func:`get` otherwise. No message ever shows the body (it may hold passwords)."""
    import json

    sent = {"Content-Type": "application/json", "Accept": "application/json"}
    sent.update(headers or {})
    return _request(method, url, json.dumps(body).encode("utf-8"), sent, timeout)


def _plain_get(url: str, headers: dict[str, str], timeout: float) -> HttpAnswer:
    """``GET`` over a plain socket, HTTP/1.0 so the answer ends with the connection and is never
    chunked: the monitor's path, the same request as urllib's without its imports."""
    import socket
    import time

    shown = shown_url(url)
    authority, slash, path = url[len("http://") :].partition("/")
    path = slash + path or "/"
    if authority.startswith("["):
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise NotAUrl(f"not a URL: {shown}")
    port = int(port_text) if port_text else 80
    lines = [f"GET {path} HTTP/1.0", f"Host: {authority}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    chunks = []
    # The whole answer within ``timeout``, not each read: a server that trickles its answer
    # must not keep a monitor past its budget.
    end = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(request)
            while True:
                connection.settimeout(max(end - time.monotonic(), 0.001))
                chunk = connection.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as err:
        raise _unreachable("GET", shown, why_failed(err, timeout)) from None
    data = b"".join(chunks)
    if not data:
        # what uwsgi does to an HTTP request on a socket that speaks its own protocol
        raise _unreachable("GET", shown, "Remote end closed connection without response")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    words = status_line.split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise HttpError(f"GET {shown}: not an HTTP answer", "not an HTTP answer")
    answer_headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            answer_headers[key] = (
                f"{answer_headers[key]}, {value}" if key in answer_headers else value
            )
    return HttpAnswer(int(words[1]), answer_headers, body.decode("utf-8", "replace"))


def _unreachable(method: str, shown: str, reason: str) -> NotReachable:
    return NotReachable(f"{method} {shown}: {reason}", reason)


def _request(
    method: str, url: str, data: Optional[bytes], headers: dict[str, str], timeout: float
) -> HttpAnswer:
    shown = shown_url(url)
    if not url.startswith(("http://", "https://")):
        raise NotAUrl(f"not an http(s) URL: {shown}")
    import http.client
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        # A redirect is the service's answer, not an instruction to probe somewhere else.
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    # No proxy: an http_proxy in the environment must not route a probe of 127.0.0.1 elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    try:
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
    except ValueError:
        raise NotAUrl(f"not a URL: {shown}") from None
    try:
        with opener.open(request, timeout=timeout) as response:
            return _answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as err:
        try:
            body = err.read()
        except (OSError, http.client.HTTPException):
            body = b""
        return _answer(err.code, err.headers, body)
    except urllib.error.URLError as err:
        raise _unreachable(method, shown, why_failed(err.reason, timeout)) from None
    except OSError as err:  # RemoteDisconnected, a reset, a timeout while reading
        raise _unreachable(method, shown, why_failed(err, timeout)) from None
    except http.client.HTTPException as err:
        reason = f"not an HTTP answer ({type(err).__name__})"
        raise HttpError(f"{method} {shown}: {reason}", reason) from None
    except ValueError:
        # urllib's "unknown url type" and friends
        raise NotAUrl(f"not a URL: {shown}") from None


def _answer(status: int, message: Message, body: bytes) -> HttpAnswer:
    headers: dict[str, str] = {}
    for name, value in message.items():
        key = str(name).lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else str(value)
    return HttpAnswer(status, headers, body.decode("utf-8", "replace"))
