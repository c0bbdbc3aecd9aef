"""stackha.services.memcached: the command line, and the checks against a real loopback socket
server that speaks memcached's text protocol (tests/fakes.FakeMemcached) or does not. (The
real memcached: tests/integration/test_memcached_one_node.py.)"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from agent_runs import free_port
from fakes import FakeMemcached
from stackha.services import memcached


@pytest.fixture
def server():
    fake = FakeMemcached()
    yield fake
    fake.close()


def test_the_command_runs_in_the_foreground_as_debians_configuration_says():
    """Debian's /etc/memcached.conf less -d (foreground) and -P (written only with -d), UDP off."""
    assert memcached.command("/usr/bin/memcached", "memcache", "192.0.2.11", 11211, 64, 1024) == [
        "/usr/bin/memcached",
        "-u",
        "memcache",
        "-l",
        "192.0.2.11",
        "-p",
        "11211",
        "-U",
        "0",
        "-m",
        "64",
        "-c",
        "1024",
    ]


def test_an_ipv6_address_is_given_in_brackets():
    """memcached reads a colon outside brackets as the start of a port."""
    assert memcached.listen_argument("2001:db8::11") == "[2001:db8::11]"
    assert memcached.listen_argument("192.0.2.11") == "192.0.2.11"
    argv = memcached.command("/m", "u", "::1", 1, 2, 64)
    assert argv[argv.index("-l") + 1] == "[::1]"


def test_the_server_list_is_what_oslo_cache_memcache_pool_reads():
    assert memcached.server_list(["192.0.2.11", "192.0.2.12"]) == (
        "192.0.2.11:11211,192.0.2.12:11211"
    )
    assert memcached.server_list(["2001:db8::11"], 11311) == "inet6:[2001:db8::11]:11311"


def test_version_is_read_from_the_answer(server):
    assert memcached.version("127.0.0.1", server.port, 2.0) == "1.6.18"
    assert server.commands == ["version"]


def test_an_answer_that_is_not_a_version_is_an_error_quoting_it(server):
    server.answers["version"] = b"ERROR\r\n"
    with pytest.raises(memcached.MemcachedError) as raised:
        memcached.version("127.0.0.1", server.port, 2.0)
    assert str(raised.value) == (
        f"memcached at 127.0.0.1:{server.port} answered 'version' with 'ERROR', not VERSION"
    )


def test_nothing_listening_is_an_error_naming_the_endpoint():
    port = free_port()
    with pytest.raises(memcached.MemcachedError) as raised:
        memcached.version("127.0.0.1", port, 2.0)
    assert str(raised.value) == (
        f"memcached at 127.0.0.1:{port} does not answer: Connection refused"
    )


def test_a_server_that_never_answers_fails_within_the_timeout(server):
    """Accepted and read, never answered: the whole exchange gives up at its timeout."""
    server.answers["version"] = None
    started = time.monotonic()
    with pytest.raises(memcached.MemcachedError) as raised:
        memcached.version("127.0.0.1", server.port, 0.3)
    assert time.monotonic() - started < 2
    assert str(raised.value).endswith("does not answer: no answer within 0.3 s")


def test_a_server_that_closes_the_connection_says_what_it_had_sent():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def half_answer():
        conn, _ = listener.accept()
        conn.recv(100)
        conn.sendall(b"VERS")
        conn.close()

    thread = threading.Thread(target=half_answer)
    thread.start()
    try:
        with pytest.raises(memcached.MemcachedError) as raised:
            memcached.version("127.0.0.1", port, 2.0)
    finally:
        thread.join()
        listener.close()
    assert str(raised.value) == (
        f"memcached at 127.0.0.1:{port} closed the connection after 'VERS'"
    )


def test_store_and_read_sets_its_own_key_with_a_short_expiry_and_reads_it_back(server):
    memcached.store_and_read("127.0.0.1", server.port, "0123abcd", 2.0)
    assert server.commands == ["set stackha:monitor 0 30 8", "0123abcd", "get stackha:monitor"]
    assert server.items == {b"stackha:monitor": (b"0", b"0123abcd")}


@pytest.mark.parametrize(
    ("command", "answer", "problem"),
    [
        (
            "set",
            b"SERVER_ERROR out of memory storing object\r\n",
            "answered 'set' with 'SERVER_ERROR out of memory storing object', not STORED",
        ),
        # STORED, and then the item is not there: a cache that loses what it takes
        ("get", b"END\r\n", "did not give back the item it stored: 'get' answered 'END'"),
        (
            "get",
            b"VALUE stackha:monitor 0 8\r\nffffffff\r\nEND\r\n",
            "did not give back the item it stored: 'get' answered "
            "'VALUE stackha:monitor 0 8 ffffffff END'",
        ),
    ],
)
def test_what_memcached_does_not_store_or_give_back_is_an_error_quoting_it(
    server, command, answer, problem
):
    server.answers[command] = answer
    with pytest.raises(memcached.MemcachedError) as raised:
        memcached.store_and_read("127.0.0.1", server.port, "0123abcd", 2.0)
    assert str(raised.value) == f"memcached at 127.0.0.1:{server.port} {problem}"


def test_the_last_output_line_is_why_memcached_exited(tmp_path):
    output = tmp_path / "memcached.log"
    assert memcached.last_output_line(str(output)) == ""
    output.write_text(
        "old run\n" + "x" * 5000 + "\nfailed to set rlimit for open files. Try starting as "
        "root or requesting smaller maxconns value.\n\n"
    )
    assert memcached.last_output_line(str(output)) == (
        "failed to set rlimit for open files. Try starting as root or requesting smaller "
        "maxconns value."
    )
