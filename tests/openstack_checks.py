"""What the OpenStack API lab tests share: keystone and nova-api deployed as an operator would
(Galera, the haproxy clone, a virtual IP, the API clones, the memcached clone), a client that
calls the virtual IP without pause from the lab's network and records every request, and what
the cluster shows."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from galera_checks import deploy as deploy_galera
from lab_helpers import inside, pcs, settle, wait_for
from stackha import http_client
from stackha.lab import openstack
from stackha.services import api_catalog as catalog
from stackha.services import openstack_api as api

NODES = openstack.NODES
# The pcs-built deployment (deploy below): keystone and nova-api, as the OpenStack HA Guide's
# commands make them; the whole stack's deployment (stack_checks) runs every API service.
PCS_SERVICES = (catalog.KEYSTONE, catalog.NOVA_API)
CLONES = ("haproxy", "memcached", *(service.name for service in PCS_SERVICES))
DEPLOY_TIMEOUT = 300.0
# keystone's deep monitor: a token from the node's own keystone, every minute
DEEP_MONITOR = ["monitor", "interval=60s", "timeout=60s", "OCF_CHECK_LEVEL=20"]


@dataclass(frozen=True)
class Deployment:
    lab: object
    info: dict
    seconds: dict = field(default_factory=dict)

    @property
    def vip(self):
        return self.info["vip"]

    @property
    def keystone_url(self):
        """keystone on the virtual IP, without the /v3."""
        return api.endpoint_url(self.vip, catalog.KEYSTONE.port)

    @property
    def nova_url(self):
        return self.info["urls"][catalog.NOVA_API.name]

    def admin(self):
        return api.read_openstack_credentials(self.info["admin_credentials"])


# -- the pcs commands of this deployment (stackha.lab.openstack's docstring tells why each) ---
# The lab tests' own: stackha lab deploy applies a CIB rendered from crm-templates/ instead.


def clone_command(agent: str, *parameters: str) -> list[str]:
    """``pcs`` arguments that create ``ocf:stackha:AGENT`` as an interleaved clone named after
    it, with its monitors at depth 0 and 10."""
    return [
        "resource",
        "create",
        agent,
        f"ocf:stackha:{agent}",
        *parameters,
        "op",
        "monitor",
        "interval=10s",
        "timeout=20s",
        "monitor",
        "interval=30s",
        "timeout=20s",
        "OCF_CHECK_LEVEL=10",
        "clone",
        "interleave=true",
    ]


def haproxy_commands(config: str) -> list[list[str]]:
    """``pcs`` argument lists that create the haproxy clone (``ocf:stackha:haproxy``)."""
    return [clone_command("haproxy", f"config={config}")]


def memcached_commands(services=PCS_SERVICES) -> list[list[str]]:
    """``pcs`` argument lists that create the memcached clone (``ocf:stackha:memcached``, each
    instance on its node's own address, where keystone's [cache] names it) and order the
    services whose cache it is after it at start only (a memcached restart must not restart
    them): after the API clones, which the orderings name."""
    return [
        clone_command("memcached"),
        *(
            [
                "constraint",
                "order",
                "start",
                "memcached-clone",
                "then",
                "start",
                f"{service.name}-clone",
                "kind=Optional",
            ]
            for service in services
            if service.uses_cache
        ),
    ]


def vip_commands(vip: str, prefix: int) -> list[list[str]]:
    """``pcs`` argument lists that create the virtual IP (``ocf:heartbeat:IPaddr2``) where a
    haproxy runs, after it has started."""
    return [
        [
            "resource",
            "create",
            "vip",
            "ocf:heartbeat:IPaddr2",
            f"ip={vip}",
            f"cidr_netmask={prefix}",
            f"nic={openstack.NIC}",
            "op",
            "monitor",
            "interval=10s",
            "timeout=20s",
        ],
        ["constraint", "colocation", "add", "vip", "with", "haproxy-clone", "INFINITY"],
        ["constraint", "order", "start", "haproxy-clone", "then", "start", "vip"],
    ]


def api_commands(services=PCS_SERVICES) -> list[list[str]]:
    """``pcs`` argument lists that create the API clones of ``services`` with stackha's
    agents, order them after the Galera clone's promotion, and one that validates tokens after
    keystone's at start only (see stackha.lab.openstack's docstring)."""
    commands = []
    for service in services:
        commands += [
            [
                "resource",
                "create",
                service.name,
                f"ocf:stackha:{service.name}",
                f"credentials={service.monitor_credentials}",
                "op",
                "start",
                "timeout=120s",
                "stop",
                "timeout=60s",
                "monitor",
                "interval=10s",
                "timeout=30s",
                "monitor",
                "interval=30s",
                "timeout=30s",
                "OCF_CHECK_LEVEL=10",
                "clone",
                "interleave=true",
            ],
            [
                "constraint",
                "order",
                "promote",
                "galera-clone",
                "then",
                "start",
                f"{service.name}-clone",
            ],
        ]
    commands += [
        [
            "constraint",
            "order",
            "start",
            f"{catalog.KEYSTONE.name}-clone",
            "then",
            "start",
            f"{service.name}-clone",
            "kind=Optional",
        ]
        for service in services
        if service.validates_tokens
    ]
    return commands


def with_deep_keystone_monitor(commands):
    """``api_commands()`` with a depth-20 monitor added to keystone's."""
    result = []
    for argv in commands:
        if argv[:3] == ["resource", "create", catalog.KEYSTONE.name]:
            at = argv.index("clone")
            argv = [*argv[:at], *DEEP_MONITOR, *argv[at:]]
        result.append(argv)
    assert any(DEEP_MONITOR[-1] in argv for argv in result), "no keystone resource to extend"
    return result


def deploy(lab):
    """Galera, keystone and nova-api provisioned, then the haproxy clone, the virtual IP and the
    API clones created with pcs inside node1; returns a :class:`Deployment` once every instance
    is Started on every node and a token is issued through the virtual IP."""
    seconds = {}
    seconds["galera"] = deploy_galera(lab)
    started = time.monotonic()
    info = openstack.provision(lab, services=PCS_SERVICES)
    seconds["provisioning"] = time.monotonic() - started
    started = time.monotonic()
    commands = [
        *haproxy_commands(info["haproxy_config"]),
        *vip_commands(info["vip"], info["prefix"]),
        *with_deep_keystone_monitor(api_commands()),
        *memcached_commands(),
    ]
    for argv in commands:
        pcs(lab, *argv)
    deployment = Deployment(lab, info, seconds)
    wait_for(lambda: all_started(lab), "every clone Started on every node", DEPLOY_TIMEOUT)
    wait_for(lambda: vip_answers(deployment), "keystone and nova-api through the VIP", 60)
    wait_for(lambda: token_through_vip(deployment), "a token through the VIP", 60)
    seconds["pacemaker start"] = time.monotonic() - started
    return deployment


# -- what the cluster shows ------------------------------------------------------------------


def status_from(lab, observers=NODES):
    """The cluster as the first node of ``observers`` that can tell sees it, or None."""
    for node in observers:
        try:
            status = lab.node(node).status()
        except Exception:  # noqa: BLE001 - a crashed node: ask the next
            continue
        if status is not None and status.dc:
            return status
    return None


def started_on(status, resource):
    """The nodes where an instance of ``resource`` is Started and not failed."""
    return {
        r.nodes[0]
        for r in status.instances(resource)
        if r.role == "Started" and not r.failed and r.nodes
    }


def all_started(lab, observers=NODES, nodes=NODES):
    status = status_from(lab, observers)
    if status is None:
        return False
    if any(started_on(status, clone) != set(nodes) for clone in CLONES):
        return False
    return len(started_on(status, "vip")) == 1


def vip_holder(lab, observers=NODES):
    status = status_from(lab, observers)
    holders = started_on(status, "vip") if status else set()
    return next(iter(holders)) if len(holders) == 1 else None


def failed_actions(lab, node="node1"):
    """The failed actions crm_mon shows, as "op_key on node: exitreason" lines."""
    result = inside(lab, node, "crm_mon", "--one-shot", "--output-as=xml", timeout=30)
    assert result.ok, result.stderr
    root = ET.fromstring(result.stdout)
    return [
        f"{f.get('op_key')} on {f.get('node')}: {f.get('exitreason') or f.get('exitstatus')}"
        for f in root.iterfind("failures/failure")
    ]


def answers_both(lab, address):
    """Whether keystone and nova-api both answer their version document at ``address``."""
    return openstack.answers_version(
        lab, api.endpoint_url(address, catalog.KEYSTONE.port), catalog.KEYSTONE.name
    ) and openstack.answers_version(
        lab, api.endpoint_url(address, catalog.NOVA_API.port), catalog.NOVA_API.name
    )


def vip_answers(deployment):
    return answers_both(deployment.lab, deployment.vip)


def token_through_vip(deployment):
    try:
        return openstack.token_for(deployment.lab, deployment.admin(), timeout=10)
    except (api.OpenStackApiError, http_client.HttpError):
        return ""


# -- the client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    kind: str
    started: float  # time.monotonic()
    ended: float
    problem: str  # "" when it succeeded

    @property
    def ok(self):
        return not self.problem


@dataclass(frozen=True)
class Outcome:
    """What the client saw from ``since`` on; times in seconds after ``since``."""

    total: int
    failed: int
    first_failure: float | None
    last_failure: float | None
    recovered_after: float  # until every request succeeds again (0: none failed)
    problems: Counter  # "kind: reason" -> how many failed so

    def __str__(self):
        if not self.failed:
            return f"{self.total} requests, none failed"
        reasons = "; ".join(f"{n}x {p}" for p, n in self.problems.most_common(4))
        return (
            f"{self.failed} of {self.total} requests failed, from {self.first_failure:.1f}s to "
            f"{self.last_failure:.1f}s; every request succeeds from {self.recovered_after:.1f}s "
            f"({reasons})"
        )


class Client:
    """Calls the virtual IP from the lab's network, one request after another: keystone
    ``GET /v3`` and nova ``GET /`` in turn, a token ``POST`` every ``token_every`` requests,
    each with ``timeout`` seconds and ``pause`` seconds between them. ``requests`` records
    each one."""

    def __init__(self, deployment, token_every=5, timeout=3.0, pause=0.05):
        self.lab = deployment.lab
        self.keystone = deployment.keystone_url + "/v3"
        self.nova = deployment.nova_url + "/"
        self.credentials = deployment.admin()
        self.token_every = token_every
        self.timeout = timeout
        self.pause = pause
        self.requests: list[Request] = []
        self.crashed: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="openstack-client", daemon=True)

    def __enter__(self):
        self._thread.start()
        wait_for(
            lambda: self.successes_in_a_row() >= 10 or self.crashed,
            "the client's first requests succeeding",
            30,
        )
        assert not self.crashed, self.crashed
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 10)
        assert not self._thread.is_alive(), "the client did not stop"
        assert not self.crashed, self.crashed

    def _run(self):
        try:
            # the loop in a thread of the lab's network namespace (lab.switch().call)
            self.lab.switch().call(self._loop)
        except BaseException as err:  # noqa: BLE001 - reported by __exit__
            self.crashed.append(err)

    def _loop(self):
        count = 0
        while not self._stop.is_set():
            if count % self.token_every == self.token_every - 1:
                kind, call = "POST /v3/auth/tokens", self._token
            elif count % 2 == 0:
                kind, call = "keystone GET /v3", self._keystone
            else:
                kind, call = "nova GET /", self._nova
            count += 1
            started = time.monotonic()
            try:
                problem = call()
            except (api.OpenStackApiError, http_client.HttpError) as err:
                problem = str(err)
            self.requests.append(Request(kind, started, time.monotonic(), problem))
            self._stop.wait(self.pause)

    def _keystone(self):
        answer = http_client.get(self.keystone, self.timeout, {"Accept": "application/json"})
        return api.version_document_ok(answer.status, answer.body, catalog.KEYSTONE) or ""

    def _nova(self):
        answer = http_client.get(self.nova, self.timeout, {"Accept": "application/json"})
        return api.version_document_ok(answer.status, answer.body, catalog.NOVA_API) or ""

    def _token(self):
        api.issue_token(self.credentials, self.timeout)
        return ""

    # -- what it saw ---------------------------------------------------------------------------

    def successes_in_a_row(self):
        count = 0
        for request in reversed(list(self.requests)):
            if not request.ok:
                break
            count += 1
        return count

    def is_steady(self, seconds):
        """Every request that ended in the last ``seconds`` succeeded, and there were some."""
        now = time.monotonic()
        recent = [r for r in list(self.requests) if r.ended >= now - seconds]
        return len(recent) >= 5 and all(r.ok for r in recent)

    def wait_steady(self, what, seconds=10.0, timeout=90.0):
        """Wait until every request of the last ``seconds`` succeeded, ``seconds`` from now at
        the earliest (what just happened is in the window); on a timeout, the assertion says
        what the requests of the last half minute saw."""
        earliest = time.monotonic() + seconds

        def steady():
            return time.monotonic() >= earliest and self.is_steady(seconds)

        try:
            wait_for(steady, f"{what}: every request succeeding", timeout + seconds)
        except AssertionError as err:
            raise AssertionError(
                f"{err}; last 30s: {self.outcome(time.monotonic() - 30)}"
            ) from None

    def outcome(self, since, until=None):
        """What the requests that ended after ``since`` (and started before ``until``) saw."""
        seen = [
            r
            for r in list(self.requests)
            if r.ended >= since and (until is None or r.started < until)
        ]
        failed = [r for r in seen if not r.ok]
        if not failed:
            return Outcome(len(seen), 0, None, None, 0.0, Counter())
        last = failed[-1]
        after = [r for r in seen if r.started >= last.ended]
        # the first request after the last failure: it and every one after it succeeded
        recovered = (after[0].started if after else last.ended) - since
        return Outcome(
            total=len(seen),
            failed=len(failed),
            first_failure=failed[0].started - since,
            last_failure=last.ended - since,
            recovered_after=max(recovered, 0.0),
            problems=Counter(f"{r.kind}: {short(r.problem)}" for r in failed),
        )


def short(problem):
    """A failure's reason without its URL, so that equal reasons count together."""
    return problem.rpartition(": ")[2] if problem.count(": ") else problem


# -- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashRound:
    """One crash of the node holding the VIP and its return, as the client saw it."""

    holder: str
    moved_to: str
    moved_after: float  # seconds from the crash until a survivor runs the VIP
    crash: Outcome  # the client's requests from the crash until steady again
    serves_after: float  # seconds from power-on until the node's own keystone and nova answer
    whole_after: float  # ... until every clone runs on all three nodes
    back: Outcome  # the client's requests from the power-on until steady again

    def __str__(self):
        return (
            f"{self.holder} (holding the VIP) crashed: VIP on {self.moved_to} after "
            f"{self.moved_after:.1f}s; client: {self.crash}\n"
            f"{self.holder} powered on: its keystone and nova-api answer after "
            f"{self.serves_after:.1f}s, every clone on all three nodes after "
            f"{self.whole_after:.1f}s; client: {self.back}"
        )


def crash_vip_holder(deployment, recovery_s):
    """Crash the node that holds the VIP while a :class:`Client` calls the VIP, wait until every
    request succeeds again (at most ``recovery_s`` seconds, and more for the steady run), power
    the node on, wait until it serves and every clone runs everywhere. Returns a
    :class:`CrashRound`."""
    lab = deployment.lab
    settle(lab)  # a transition in flight would hold the VIP's move back
    holder = vip_holder(lab)
    assert holder, "no node holds the VIP"
    survivors = [n for n in NODES if n != holder]
    address = lab.node(holder).address
    with Client(deployment) as client:
        crashed = time.monotonic()
        lab.crash(holder)
        # the survivors see the VIP on the crashed node until they have lost it
        wait_for(
            lambda: vip_holder(lab, survivors) in survivors,
            "the VIP started on a survivor",
            recovery_s,
        )
        moved_after = time.monotonic() - crashed
        moved_to = vip_holder(lab, survivors)
        client.wait_steady("after the crash", timeout=recovery_s + 30)
        crash = client.outcome(crashed)
        powered = time.monotonic()
        lab.set_power(holder, "on")
        wait_for(lambda: answers_both(lab, address), f"{holder} serving again", 300)
        serves_after = time.monotonic() - powered
        wait_for(lambda: all_started(lab), "every clone Started on every node", 120)
        whole_after = time.monotonic() - powered
        wait_for(lambda: vip_answers(deployment), "the VIP answering", 30)
        client.wait_steady("after the power-on")
        back = client.outcome(powered)
    return CrashRound(holder, moved_to, moved_after, crash, serves_after, whole_after, back)
