"""ocf:stackha:haproxy against a real HAProxy on loopback, run as pacemaker-execd runs it."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agent_runs import exit_reason, free_port, run_agent
from stackha.process import ProcTable, is_alive, read_pidfile

PROCESSES = ProcTable()


class SlowBackend(BaseHTTPRequestHandler):
    """Answers after a pause: a request in flight across a reload."""

    def do_GET(self):  # noqa: N802 - http.server's name
        time.sleep(float(self.path.strip("/") or 0))
        body = b"backend"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowBackend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


class Site:
    """A HAProxy configuration in a scratch directory and the agent environment for it."""

    def __init__(self, directory, agent, agent_env, backend_port):
        self.directory = directory
        self.agent = agent
        self.port = free_port()
        self.backend_port = backend_port
        self.config = directory / "haproxy.cfg"
        self.pidfile = directory / "haproxy.pid"
        self.socket = directory / "run" / "admin.sock"
        self.write_config()
        self.env = {
            **agent_env,
            "OCF_RESOURCE_INSTANCE": "haproxy-it",
            "OCF_RESKEY_config": str(self.config),
            "OCF_RESKEY_pidfile": str(self.pidfile),
            "OCF_RESKEY_CRM_meta_timeout": "20000",
            "OCF_RESKEY_CRM_meta_interval": "10000",
        }

    def write_config(self, extra=""):
        self.config.write_text(
            f"""global
    stats socket {self.socket} mode 600 level admin
{extra}
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend web
    bind 127.0.0.1:{self.port}
    acl health path /health
    acl broken path /broken
    http-request return status 200 content-type text/plain string ok if health
    http-request return status 503 content-type text/plain string down if broken
    default_backend app

backend app
    server app1 127.0.0.1:{self.backend_port}
"""
        )

    def run(self, action, **extra):
        return run_agent(self.agent, action, {**self.env, **extra})

    def get(self, path="/health", timeout=10):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def master(self):
        return read_pidfile(str(self.pidfile))

    def workers(self):
        master = self.master()
        return PROCESSES.children(master) if master else []


@pytest.fixture
def site(installed, agent_env, tmp_path, backend):
    site = Site(tmp_path, installed / "haproxy", agent_env, backend)
    yield site
    assert site.run("stop").returncode == 0


def test_start_refuses_an_invalid_config_with_haproxys_reason(site):
    site.config.write_text(site.config.read_text().replace("mode http", "mode htttp", 1))
    result = site.run("start")
    assert result.returncode == 2
    assert "haproxy -c rejects" in exit_reason(result)
    assert "htttp" in exit_reason(result)
    assert not site.pidfile.exists()


def test_start_returns_once_haproxy_serves(site):
    """No sleep between start and the first request: start waited for it."""
    assert site.run("start").returncode == 0
    assert site.get() == (200, b"ok")
    assert site.get("/") == (200, b"backend")


def test_start_reports_a_taken_port_with_haproxys_reason(site):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", site.port))
        squatter.listen(1)
        result = site.run("start")
    assert result.returncode == 1
    assert "cannot bind" in exit_reason(result) or "Address already in use" in exit_reason(result)


def test_a_killed_master_is_not_running(site):
    assert site.run("start").returncode == 0
    os.kill(site.master(), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(PROCESSES, site.master()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert site.run("monitor").returncode == 7
    assert site.run("start").returncode == 0
    assert site.get() == (200, b"ok")


def test_a_killed_worker_is_noticed(site):
    assert site.run("start").returncode == 0
    (worker,) = site.workers()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(PROCESSES, worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert site.run("monitor").returncode in (1, 7)


def test_depth_10_asks_haproxy_itself(site):
    """Stats socket gone: HAProxy may still run (depth 0) but cannot be asked (depth 10)."""
    assert site.run("start").returncode == 0
    assert site.run("monitor", OCF_CHECK_LEVEL="10").returncode == 0
    site.socket.unlink()
    assert site.run("monitor").returncode == 0
    result = site.run("monitor", OCF_CHECK_LEVEL="10")
    assert result.returncode == 1
    assert exit_reason(result).startswith(f"stats socket {site.socket} does not answer")


def test_depth_10_health_url_reports_the_http_status(site):
    assert site.run("start").returncode == 0
    url = f"http://127.0.0.1:{site.port}"
    assert (
        site.run("monitor", OCF_CHECK_LEVEL="10", OCF_RESKEY_health_url=f"{url}/health").returncode
        == 0
    )
    result = site.run("monitor", OCF_CHECK_LEVEL="10", OCF_RESKEY_health_url=f"{url}/broken")
    assert result.returncode == 1
    assert exit_reason(result) == f"health URL {url}/broken answered HTTP 503"


def test_reload_drops_no_connection(site):
    """Requests in flight and new connections during five reloads all succeed."""
    assert site.run("start").returncode == 0
    failures, successes, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, _ = site.get("/0")
                (successes if status == 200 else failures).append(status)
            except OSError as err:
                failures.append(repr(err))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    in_flight = {}
    slow = threading.Thread(target=lambda: in_flight.update(result=site.get("/1.5")))
    slow.start()
    time.sleep(0.3)
    workers = set()
    for _ in range(5):
        result = site.run("reload")
        assert result.returncode == 0, result.stderr
        workers.update(site.workers())
        time.sleep(0.2)
    stop.set()
    for thread in clients:
        thread.join()
    slow.join()
    assert failures == []
    assert len(successes) > 20
    assert in_flight["result"] == (200, b"backend")
    assert len(workers) >= 5  # every reload made a new worker


def test_reload_with_a_broken_config_keeps_the_running_haproxy(site):
    assert site.run("start").returncode == 0
    worker_before = site.workers()
    site.write_config(extra="    bogus_directive yes\n")
    result = site.run("reload-agent")
    assert result.returncode == 2
    assert "bogus_directive" in exit_reason(result)
    assert site.workers() == worker_before
    assert site.get() == (200, b"ok")


def test_reload_agent_starts_a_new_worker(site):
    assert site.run("start").returncode == 0
    before = site.workers()
    assert site.run("reload-agent", OCF_RESKEY_check_timeout="9").returncode == 0
    assert site.workers() != before
    assert site.run("monitor", OCF_CHECK_LEVEL="10").returncode == 0


def test_reload_of_a_stopped_haproxy_says_so(site):
    result = site.run("reload")
    assert result.returncode == 7
    assert exit_reason(result) == "HAProxy is not running, nothing to reload"


def test_stop_leaves_no_process_and_frees_the_port(site):
    assert site.run("start").returncode == 0
    pids = [site.master(), *site.workers()]
    assert site.run("stop").returncode == 0
    assert not any(is_alive(PROCESSES, pid) for pid in pids)
    assert not site.pidfile.exists()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", site.port))


def test_a_stale_pidfile_naming_another_process_is_not_haproxy(site):
    """A reused pid must not be mistaken for HAProxy (nor killed by stop)."""
    site.pidfile.write_text(f"{os.getpid()}\n")
    assert site.run("monitor", OCF_RESKEY_CRM_meta_interval="0").returncode == 7
    assert site.run("stop").returncode == 0
    assert is_alive(PROCESSES, os.getpid())


def test_default_stats_socket_directory_is_created(site):
    """Debian's unit makes /run/haproxy; under Pacemaker the agent does it."""
    assert not site.socket.parent.exists()
    assert site.run("start").returncode == 0
    assert site.socket.exists()
