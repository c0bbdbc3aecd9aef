"""stackha.http_client against real loopback servers: what it sends, what it makes of the
answer, how it fails, and that a plain GET (every monitor's) imports nothing heavy."""

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeHttpServer
from stackha import http_client
from stackha.http_client import HttpError, NotAUrl, NotReachable

ROOT = Path(__file__).resolve().parents[2]
VERSION = json.dumps({"version": {"id": "v3.14", "status": "stable"}})


@pytest.fixture
def server():
    server = FakeHttpServer()
    yield server
    server.close()


def serve_once(payload, host="127.0.0.1"):
    """A loopback socket that answers the first connection with ``payload`` and closes it;
    the request it read is put in the returned list."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.bind((host, 0))
    sock.listen(1)
    received = []

    def run():
        connection, _ = sock.accept()
        with connection:
            received.append(connection.recv(65536))
            connection.sendall(payload)
        sock.close()

    threading.Thread(target=run, daemon=True).start()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}/", received


# -- what is sent and what comes back ----------------------------------------------------------


def test_get_returns_status_headers_and_body(server):
    server.answers["GET", "/v3"] = (200, {"Content-Type": "application/json"}, VERSION)
    answer = http_client.get(f"{server.url}/v3", 1.0, {"Accept": "application/json"})
    assert answer.status == 200 and answer.body == VERSION
    assert answer.headers["content-type"] == "application/json"
    assert server.requests[0][2]["Accept"] == "application/json"


def test_a_plain_get_sends_the_given_headers_and_host_alone():
    """No Accept, User-Agent or other header of the client's own on the monitor's path."""
    url, received = serve_once(b"HTTP/1.0 204 No Content\r\n\r\n")
    assert http_client.get(url + "x?y=1", 1.0, {"X-Auth-Token": "t"}).status == 204
    request = received[0].decode()
    authority = url[len("http://") : -1]
    assert request == f"GET /x?y=1 HTTP/1.0\r\nHost: {authority}\r\nX-Auth-Token: t\r\n\r\n"


def test_a_header_sent_twice_has_its_values_joined():
    url, _ = serve_once(b"HTTP/1.1 200 OK\r\nVary: a\r\nvary: b\r\n\r\nok")
    answer = http_client.get(url, 1.0)
    assert (answer.headers["vary"], answer.body) == ("a, b", "ok")


def test_an_ipv6_literal_is_reached_in_brackets():
    try:
        url, _ = serve_once(b"HTTP/1.0 200 OK\r\n\r\n", host="::1")
    except OSError:
        pytest.skip("no IPv6 on loopback here")
    assert http_client.get(url, 1.0).status == 200


def test_an_http_error_status_is_an_answer(server):
    server.answers["GET", "/"] = (503, {"Retry-After": "5"}, "busy")
    answer = http_client.get(server.url + "/", 1.0)
    assert (answer.status, answer.headers["retry-after"], answer.body) == (503, "5", "busy")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_is_an_answer_not_followed(server, method):
    """GET takes the plain socket, POST urllib: neither follows the service elsewhere."""
    server.answers[method, "/"] = (302, {"Location": "http://192.0.2.1/elsewhere"}, "")
    if method == "GET":
        answer = http_client.get(server.url + "/", 1.0)
    else:
        answer = http_client.send_json("POST", server.url + "/", {}, 1.0)
    assert answer.status == 302 and len(server.requests) == 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_proxy_in_the_environment_is_not_used(server, closed_port, monkeypatch, method):
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port}")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server.answers[method, "/"] = (200, {}, "{}")
    if method == "GET":
        answer = http_client.get(server.url + "/", 1.0)
    else:
        answer = http_client.send_json("POST", server.url + "/", {}, 1.0)
    assert answer.status == 200


def test_send_json_sends_json_and_returns_the_answer(server):
    server.answers["POST", "/v3/auth/tokens"] = (201, {"X-Subject-Token": "gAAAA"}, "{}")
    answer = http_client.send_json("POST", f"{server.url}/v3/auth/tokens", {"a": [1]}, 1.0)
    assert answer.status == 201 and answer.headers["x-subject-token"] == "gAAAA"
    method, path, headers, body = server.requests[0]
    assert (method, path, json.loads(body)) == ("POST", "/v3/auth/tokens", {"a": [1]})
    assert (headers["Content-Type"], headers["Accept"]) == ("application/json",) * 2


def test_put_sends_no_body_and_returns_the_answer(server):
    """Keystone's role assignment: PUT with the token, nothing in the body, 204 back."""
    server.answers["PUT", "/v3/projects/p/users/u/roles/r"] = (204, {}, "")
    answer = http_client.put(
        f"{server.url}/v3/projects/p/users/u/roles/r", 1.0, {"X-Auth-Token": "gAAAA"}
    )
    assert answer.status == 204 and answer.body == ""
    method, path, headers, body = server.requests[0]
    assert (method, path, headers["X-Auth-Token"], body) == (
        "PUT",
        "/v3/projects/p/users/u/roles/r",
        "gAAAA",
        b"",
    )


def test_basic_authorization_is_what_a_server_expects():
    server = FakeHttpServer(basic_auth=("stackha", "p:w"))
    try:
        server.answers["GET", "/api/nodes"] = (200, {}, "[]")
        headers = http_client.basic_authorization("stackha", "p:w")
        assert http_client.get(server.url + "/api/nodes", 1.0, headers).status == 200
        assert http_client.get(server.url + "/api/nodes", 1.0).status == 401
    finally:
        server.close()


# -- how it fails ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_connection_refused_is_not_reachable_naming_the_url(closed_port, scheme):
    """http: the plain socket; https: urllib. The same message either way."""
    url = f"{scheme}://127.0.0.1:{closed_port}/v3"
    with pytest.raises(NotReachable, match=f"^GET {url}: Connection refused$") as caught:
        http_client.get(url, 1.0)
    assert caught.value.reason == "Connection refused"


def test_no_answer_in_time_is_not_reachable():
    """A listening socket that never accepts: the connection is queued, no answer comes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with pytest.raises(NotReachable, match=f"^GET {url}: no answer within 0.2 s$"):
            http_client.get(url, 0.2)


def test_an_answer_trickling_in_is_cut_at_the_timeout_not_at_each_read():
    """A byte every 0.2 s: each read is quick, the answer never ends; the monitor's budget
    bounds the whole answer."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def trickle():
        connection, _ = sock.accept()
        with connection:
            connection.recv(65536)
            try:
                for _ in range(20):
                    connection.sendall(b"x")
                    time.sleep(0.2)
            except OSError:
                pass  # the client gave up
        sock.close()

    threading.Thread(target=trickle, daemon=True).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    started = time.monotonic()
    with pytest.raises(NotReachable, match=f"^GET {url}: no answer within 1.0 s$"):
        http_client.get(url, 1.0)
    assert time.monotonic() - started < 1.5


def test_a_closed_connection_without_an_answer_is_not_reachable():
    """What uwsgi does to an HTTP request on a uwsgi-protocol socket."""
    url, _ = serve_once(b"")
    with pytest.raises(NotReachable, match="Remote end closed connection without response$"):
        http_client.get(url, 1.0)


def test_an_answer_that_is_not_http_is_an_error():
    url, _ = serve_once(b"\x00\x12garbage\r\n\r\n")
    with pytest.raises(HttpError, match=f"^GET {url}: not an HTTP answer$") as caught:
        http_client.get(url, 1.0)
    assert type(caught.value) is HttpError and caught.value.reason == "not an HTTP answer"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("controller:5000/v3", "not an http(s) URL: controller:5000/v3"),
        ("ftp://controller/v3", "not an http(s) URL: ftp://controller/v3"),
        ("http:///v3", "not a URL: http:///v3"),
        ("http://controller:port/v3", "not a URL: http://controller:port/v3"),
    ],
)
def test_a_url_that_is_not_one_is_an_error(url, message):
    with pytest.raises(NotAUrl) as caught:
        http_client.get(url, 1.0)
    assert str(caught.value) == message


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_messages_never_show_a_password_in_the_url(closed_port, method):
    url = f"http://admin:s3cret@127.0.0.1:{closed_port}/v3"
    with pytest.raises(NotReachable) as caught:
        if method == "GET":
            http_client.get(url, 1.0)
        else:
            http_client.send_json("POST", url, {"password": "s3cret"}, 1.0)
    assert "s3cret" not in str(caught.value)
    assert str(caught.value).startswith(f"{method} http://127.0.0.1:{closed_port}/v3: ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://admin:s3cret@controller:5000/v3", "http://controller:5000/v3"),
        ("https://u:p@w@[::1]/x@y", "https://[::1]/x@y"),
        ("http://controller:5000/v3?user=a@b", "http://controller:5000/v3?user=a@b"),
        ("controller:5000", "controller:5000"),
    ],
)
def test_shown_url_drops_the_user_and_password_alone(url, shown):
    assert http_client.shown_url(url) == shown


@pytest.mark.parametrize(
    ("status", "text"), [(503, "503 Service Unavailable"), (201, "201 Created"), (599, "599")]
)
def test_status_text_names_the_status_http_knows(status, text):
    assert http_client.status_text(status) == text


@pytest.mark.parametrize(
    ("error", "timeout", "why"),
    [
        (socket.timeout("timed out"), 2.5, "no answer within 2.5 s"),
        (socket.timeout("timed out"), None, "no answer in time"),
        (ConnectionRefusedError(111, "Connection refused"), 1.0, "Connection refused"),
        (OSError("odd"), 1.0, "odd"),
        (ValueError(), 1.0, "ValueError"),
    ],
)
def test_why_failed_says_it_in_a_few_words(error, timeout, why):
    assert http_client.why_failed(error, timeout) == why


# -- the monitor's path ----------------------------------------------------------------------

PLAIN_GET = """
import sys
before = set(sys.modules)
from stackha import http_client
answer = http_client.get({url!r}, 5.0)
added = sorted(set(sys.modules) - before)
import json  # only now: it is one of the modules looked for
print(json.dumps({{"status": answer.status, "added": added}}))
"""
HEAVY = ("urllib", "http", "email", "ssl", "json", "base64")


def test_a_plain_get_imports_none_of_urllib_http_email_or_ssl(server):
    """What every depth-10 monitor does costs a socket, not the ~30 ms of CPU those imports
    take."""
    server.answers["GET", "/v3"] = (200, {}, VERSION)
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_GET.format(url=f"{server.url}/v3")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "lib")},
        timeout=30,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200, result.stderr
    assert [m for m in report["added"] if m.split(".")[0] in HEAVY] == []
