"""fence_stackha_pdu on a daisy chain of PDUs (APC's Network Port Sharing), over real telnet.

The lab's PDU simulator serves on loopback here with two units: the host (display id 1) and a
guest (display id 2), each outlet powering a named machine in a switchboard the test reads.
"""

from __future__ import annotations

import secrets
import socketserver
import subprocess
import threading

import pytest
from agent_runs import free_port
from stackha.lab.pdu import LineReader, Outlets, Session

AGENT = "/usr/sbin/fence_stackha_pdu"


class Switchboard:
    """The machines behind the outlets: only their power state."""

    def __init__(self, machines):
        self.power = {machine: "on" for machine in machines}

    def power_state(self, node):
        return self.power[node]

    def set_power(self, node, action):
        self.power[node] = {"cycle": "on"}.get(action, action)
        return self.power[node]


@pytest.fixture
def chain():
    board = Switchboard(["db1", "db2", "web1", "web2"])
    outlets = Outlets(board, {(1, 1): "db1", (1, 2): "web1", (2, 1): "db2", (2, 2): "web2"})
    password = secrets.token_hex(6)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            connection = self.request
            reader = LineReader(lambda: connection.recv(4096))
            try:
                Session(
                    outlets,
                    reader,
                    lambda text: connection.sendall(text.encode()),
                    ("apc", password),
                ).run()
            except OSError:
                pass  # the agent hung up

    port = free_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"port": port, "password": password, "board": board}
    server.shutdown()
    server.server_close()


def agent(chain, action, **options):
    lines = {
        "ip": "127.0.0.1",
        "ipport": str(chain["port"]),
        "username": "apc",
        "password": chain["password"],
        "action": action,
        **options,
    }
    stdin = "".join(f"{key}={value}\n" for key, value in lines.items())
    return subprocess.run([AGENT], input=stdin, capture_output=True, text=True, timeout=60)


def test_switch_selects_the_guest_unit(installed, chain):
    result = agent(chain, "off", switch="2", plug="1")
    assert (result.returncode, result.stdout) == (0, "Success: Powered OFF\n"), result.stderr
    assert chain["board"].power == {"db1": "on", "db2": "off", "web1": "on", "web2": "on"}
    assert agent(chain, "status", switch="2", plug="1").stdout == "Status: OFF\n"
    assert agent(chain, "status", plug="1").stdout == "Status: ON\n"


def test_fence_apcs_switch_colon_plug_notation_and_names_on_a_guest(installed, chain):
    result = agent(chain, "reboot", plug="2:web2")
    assert (result.returncode, result.stdout) == (0, "Success: Rebooted\n"), result.stderr
    result = agent(chain, "off", plug="2:2")
    assert result.returncode == 0, result.stderr
    assert chain["board"].power["web2"] == "off"
    assert chain["board"].power["web1"] == "on"


def test_list_shows_the_outlets_of_the_chosen_unit(installed, chain):
    assert agent(chain, "list", switch="2").stdout == "1,db2\n2,web2\n"
    assert agent(chain, "list").stdout == "1,db1\n2,web1\n"


def test_a_unit_that_is_not_in_the_chain_fails_with_the_pdus_error(installed, chain):
    result = agent(chain, "status", switch="3", plug="1")
    assert result.returncode == 1
    assert "olStatus 3:1: E102" in result.stderr


@pytest.mark.parametrize("switch", ["0", "5", "two"])
def test_a_switch_that_no_chain_has_is_refused_before_contacting_the_pdu(installed, switch):
    stdin = (
        f"ip=127.0.0.1\nipport=9\nusername=apc\npassword=x\nswitch={switch}\naction=validate-all\n"
    )
    result = subprocess.run([AGENT], input=stdin, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"switch '{switch}'" in result.stderr and "1 (the host) to 4" in result.stderr
