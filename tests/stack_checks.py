"""What the lab tests and the benchmark of the whole stack share: the stack deployed by
``make lab``'s code path (stackha.lab.deploy), what the cluster shows, and a crash of the
node holding the VIP with fencing on: Pacemaker fences it through its BMC, which powers it
back on, and it rejoins every service."""

from __future__ import annotations

import itertools
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from lab_helpers import inside, settle, wait_for
from openstack_checks import (
    Client,
    Deployment,
    Outcome,
    Request,
    answers_both,
    short,
    status_from,
)
from stackha import http_client
from stackha.lab import deploy as lab_deploy
from stackha.lab import galera as lab_galera
from stackha.lab import openstack, package
from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.services import api_catalog as catalog
from stackha.services import memcached
from stackha.services import openstack_api as api

NODES = ("node1", "node2", "node3")
VIP = "vip-public"
DATABASE_VIP = "vip-database"


def stackha_command(lab=None):
    """The package's stackha, which the lab installs and its nodes run: on the host for a lab
    of the host's own files, in the nodes' layer for nodes of a release."""
    if lab is None or lab.load().release is None:
        assert Path(package.STACKHA).exists(), "no stackha package installed: the lab installs it"
    return package.STACKHA


def deploy_stack(lab, apis=catalog.SERVICES):
    """``stackha lab deploy`` with the API services ``apis`` (every one by default)."""
    started = time.monotonic()
    info = lab_deploy.deploy(lab, stackha_command(lab), apis)
    info["deploy_seconds"] = time.monotonic() - started
    return Deployment(lab, info)


def vip_holder(lab, observers=NODES, vip=VIP):
    status = status_from(lab, observers)
    if status is None:
        return None
    holders = [r.nodes[0] for r in status.instances(vip) if r.active and r.nodes]
    return holders[0] if len(holders) == 1 else None


# -- keystone's cache: the memcached clone ---------------------------------------------------

# The depth-20 monitor's own item, as metadump shows it (URL-decoded)
MONITOR_KEY = memcached.CHECK_KEY


def memcached_keys(lab, node, timeout=10.0):
    """The keys the memcached on ``node`` holds (``lru_crawler metadump all``, which gives
    them URL-encoded), asked on the node's own address from the lab's network, as keystone
    asks it."""
    address = lab.node(node).address

    def dump():
        with socket.create_connection((address, memcached.PORT), timeout=timeout) as conn:
            conn.sendall(b"lru_crawler metadump all\r\n")
            answer = b""
            while True:
                chunk = conn.recv(65536)
                assert chunk, f"{node}'s memcached closed after {answer[-200:]!r}"
                answer += chunk
                # one line a key, then END; or one line ("BUSY ...") while another crawl runs
                if answer.endswith(b"END\r\n") or (
                    answer.endswith(b"\r\n") and not answer.startswith(b"key=")
                ):
                    return answer.decode("ascii", "replace")

    def keys():
        text = lab.switch().call(dump)
        if not text.startswith(("key=", "END")):
            return None  # the crawler is busy: ask again
        return [
            unquote(line.split()[0][len("key=") :])
            for line in text.splitlines()
            if line.startswith("key=")
        ]

    found = []
    wait_for(lambda: found.append(keys()) or found[-1] is not None, f"{node}'s metadump", 30)
    return found[-1]


# -- the database path: one writer through HAProxy ------------------------------------------


def local_commits(lab, nodes=NODES):
    """{node: wsrep_local_commits}: the transactions its clients committed on it (what it
    applies for its peers is not counted), for the nodes that answer."""
    found = {}
    for node in nodes:
        value = lab_galera.wsrep_status(lab, node).get("wsrep_local_commits", "")
        if value.isdigit():
            found[node] = int(value)
    return found


def commits_during(lab, work, nodes=NODES):
    """{node: local commits} while ``work()`` ran (a node that did not answer before or after
    is left out)."""
    before = local_commits(lab, nodes)
    work()
    after = local_commits(lab, nodes)
    return {n: after[n] - before[n] for n in nodes if n in before and n in after}


def writers(deltas):
    return sorted(node for node, count in deltas.items() if count > 0)


def galera_servers(lab, node):
    """{server: (status, current sessions, total sessions)} of the ``galera`` proxy, from the
    stats socket of ``node``'s HAProxy."""
    result = lab.node_runner(node).run(
        ["/usr/bin/socat", "-", f"UNIX-CONNECT:{openstack.HAPROXY_STATS_SOCKET}"],
        timeout=10,
        stdin="show stat\n",
    )
    assert result.ok, result.output_line()
    return proxy_servers(result.stdout, "galera")


def proxy_servers(show_stat, proxy):
    """{server: (status, current sessions, total sessions)} of ``proxy`` in the answer of
    HAProxy's stats socket to ``show stat``."""
    header, *rows = show_stat.splitlines()
    columns = header.lstrip("# ").split(",")
    servers = {}
    for row in rows:
        fields = dict(zip(columns, row.split(",")))
        if fields.get("pxname") == proxy and fields.get("svname") not in ("FRONTEND", "BACKEND"):
            servers[fields["svname"]] = (
                fields["status"],
                int(fields["scur"] or 0),
                int(fields["stot"] or 0),
            )
    return servers


class Writer:
    """Writes through the APIs without pause, from the lab's network: a project created in
    keystone through the VIP (an INSERT in Galera, through HAProxy on the database VIP), then
    a token issued (reads), in turn; ``requests`` records each."""

    def __init__(self, deployment, timeout=5.0, pause=0.1):
        self.lab = deployment.lab
        self.url = deployment.keystone_url + "/v3/projects"
        self.credentials = deployment.admin()
        self.timeout = timeout
        self.pause = pause
        self.requests: list[Request] = []
        self.crashed: list[BaseException] = []
        self._token = ""
        self._names = (f"stackha-writer-{time.time_ns()}-{i}" for i in itertools.count())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)

    def __enter__(self):
        self._thread.start()
        wait_for(
            lambda: sum(r.ok for r in list(self.requests)) >= 4 or self.crashed,
            "the writer's first requests succeeding",
            60,
        )
        assert not self.crashed, self.crashed
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.timeout * 2 + 10)
        assert not self._thread.is_alive(), "the writer did not stop"
        assert not self.crashed, self.crashed

    def _run(self):
        try:
            self.lab.switch().call(self._loop)
        except BaseException as err:  # noqa: BLE001 - reported by __exit__
            self.crashed.append(err)

    def _loop(self):
        for count in itertools.count():
            if self._stop.is_set():
                return
            kind = "POST /v3/projects" if count % 2 == 0 else "POST /v3/auth/tokens"
            started = time.monotonic()
            try:
                problem = self._create() if count % 2 == 0 else self._login()
            except (api.OpenStackApiError, http_client.HttpError) as err:
                problem = str(err)
            self.requests.append(Request(kind, started, time.monotonic(), problem))
            self._stop.wait(self.pause)

    def _login(self):
        self._token = api.issue_token(self.credentials, self.timeout)
        return ""

    def _create(self):
        if not self._token:
            self._login()
        body = {"project": {"name": next(self._names), "domain_id": "default"}}
        headers = {"X-Auth-Token": self._token, "Accept": "application/json"}
        answer = http_client.send_json("POST", self.url, body, self.timeout, headers)
        return "" if answer.status == 201 else f"HTTP {answer.status}"

    def succeeded(self, since=0.0):
        return [r for r in list(self.requests) if r.ok and r.started >= since]

    def wait_steady(self, what, seconds=8.0, timeout=120.0):
        """Until every request of the last ``seconds`` succeeded, ``seconds`` from now at the
        earliest."""
        earliest = time.monotonic() + seconds

        def steady():
            now = time.monotonic()
            recent = [r for r in list(self.requests) if r.ended >= now - seconds]
            return now >= earliest and len(recent) >= 4 and all(r.ok for r in recent)

        wait_for(steady, f"{what}: every write succeeding", timeout + seconds)

    def outcome(self, since):
        seen = [r for r in list(self.requests) if r.ended >= since]
        failed = [r for r in seen if not r.ok]
        if not failed:
            return f"{len(seen)} requests, none failed"
        reasons = {short(r.problem) for r in failed}
        return (
            f"{len(failed)} of {len(seen)} failed, from {failed[0].started - since:.1f}s to "
            f"{failed[-1].ended - since:.1f}s ({'; '.join(sorted(reasons)[:3])})"
        )

    def failed_window(self, since):
        """Seconds from ``since`` until the last failed request ended (0: none failed)."""
        failed = [r for r in list(self.requests) if r.ended >= since and not r.ok]
        return failed[-1].ended - since if failed else 0.0


def whole(deployment, nodes=NODES):
    """Every clone on every node, Galera Primary and Synced everywhere, RabbitMQ one cluster
    of all, the fence devices started."""
    lab = deployment.lab
    return (
        lab_deploy.clones_started(lab, tuple(deployment.info["clones"]))
        and lab_galera.healthy(lab, nodes)
        and lab_rabbitmq.healthy(lab, deployment.info["rabbitmq_monitor_password"], nodes)
        and lab_deploy.fence_devices_started(lab)
    )


def fencing_of(lab, target, observer):
    """(action, device) of the last successful fencing of ``target`` as ``observer`` knows it,
    or None: from stonith_admin's history and the fencer log of the node that did it."""
    history = inside(lab, observer, "stonith_admin", "--history", target, timeout=30).stdout
    if f"of {target} successful" not in history:
        return None
    delegate = history.split("delegate=")[1].split(",")[0]
    log = inside(lab, delegate, "cat", "/var/log/pacemaker/pacemaker.log", timeout=30).stdout
    found = re.findall(rf"Operation '(\w+)' \[\d+\] targeting {target} using (\S+) returned 0", log)
    return found[-1] if found else ("?", "?")


@dataclass(frozen=True)
class FencedCrash:
    holder: str
    moved_to: str
    moved_after: float  # seconds from the crash until a survivor runs the VIP
    crash: Outcome  # the client's requests from the crash until steady again
    fencing: tuple[str, str]  # (action, device)
    fenced_after: float  # seconds from the crash until the fencing is in the history
    serves_after: float  # ... until the node's own keystone and nova answer again
    whole_after: float  # ... until every service runs on all three nodes again

    def __str__(self):
        return (
            f"{self.holder} (holding the VIP) crashed: VIP on {self.moved_to} after "
            f"{self.moved_after:.1f}s; client: {self.crash}\n"
            f"{self.holder} fenced ({self.fencing[0]} through {self.fencing[1]}) after "
            f"{self.fenced_after:.1f}s; its keystone and nova-api answer after "
            f"{self.serves_after:.1f}s; every service on all three nodes after "
            f"{self.whole_after:.1f}s"
        )


def crash_vip_holder(deployment, recovery_s=120):
    """Crash the node holding the VIP while a client calls the VIP; the cluster fences it (its
    BMC reboots it) and it comes back by itself. Returns a :class:`FencedCrash`."""
    lab = deployment.lab
    settle(lab)
    holder = vip_holder(lab)
    assert holder, "no node holds the VIP"
    survivors = [n for n in NODES if n != holder]
    address = lab.node(holder).address
    with Client(deployment) as client:
        crashed = time.monotonic()
        lab.crash(holder)
        wait_for(
            lambda: vip_holder(lab, survivors) in survivors, "the VIP on a survivor", recovery_s
        )
        moved_after = time.monotonic() - crashed
        moved_to = vip_holder(lab, survivors)
        client.wait_steady("after the crash", timeout=recovery_s + 30)
        crash = client.outcome(crashed)
        wait_for(lambda: fencing_of(lab, holder, moved_to), f"{holder} fenced", 120)
        fenced_after = time.monotonic() - crashed
        fencing = fencing_of(lab, holder, moved_to)
        wait_for(lambda: answers_both(lab, address), f"{holder} serving again", 300)
        serves_after = time.monotonic() - crashed
        wait_for(lambda: whole(deployment), "every service on every node again", 300)
        whole_after = time.monotonic() - crashed
        client.wait_steady("after the return")
    return FencedCrash(
        holder, moved_to, moved_after, crash, fencing, fenced_after, serves_after, whole_after
    )
