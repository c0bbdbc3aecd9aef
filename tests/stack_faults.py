"""The whole-stack soak's faults, and what it watches after each one until every service is back
on every node by itself.

A round is one fault or two at once (never two that take a quorum away): every node crashing
at once (the site's power; it comes back), one node crashed (left to fencing: its BMC reboots
it), a node powered off and on through its BMC, a node partitioned until the survivors fence
it (it must come back through the BMC's reboot, nobody powers it on), kill -9 of one service's
main process on one node. Every random choice is drawn before the fault starts, in the test's
thread, so that a seed replays the same rounds.

:class:`Watch` polls the cluster as a node with quorum sees it (crm_mon) and the services
themselves (Galera's wsrep status on every node, RabbitMQ's cluster as every broker sees it):
for each service, whether it is whole and since when; and, when a round fails, what stayed out
with the failed actions, the fencing and each node's pacemaker.log lines of the round.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from lab_helpers import fault_crash_all_nodes
from stackha.lab import galera as lab_galera
from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.lab.namespaces import LabError
from stackha.pacemaker import crm_mon
from stackha.runner import CommandError
from stackha.services import api_catalog as catalog

NODES = ("node1", "node2", "node3")
EVERY_NODE = "every node crashed"
CRASH = "node crashed"
POWER = "node powered off and on through its BMC"
PARTITION = "node partitioned until fenced"
KILL = "kill -9 of a service"
TWO = "two at once"
KINDS = (EVERY_NODE, CRASH, POWER, PARTITION, KILL, TWO)
NODE_FAULTS = (CRASH, POWER, PARTITION)
FENCE_TIMEOUT = 150.0  # from the cut until the BMC has rebooted a partitioned node
HAPROXY_PID_FILE = "/run/haproxy.pid"  # ocf:stackha:haproxy's pidfile default, as the CIB has it


def _kill_haproxy(lab, node):
    lab.kill_9([node], (HAPROXY_PID_FILE,), "haproxy")


def _kill_uwsgi(service):
    def kill(lab, node):
        lab.kill_9([node], (catalog.service_named(service).pidfile,), "uwsgi")

    return kill


# What kill -9 hits: the main process of each service, found by its pid file.
KILLERS = {
    "mariadbd": lab_galera.kill_mariadbd,
    "beam.smp": lab_rabbitmq.kill_broker,
    "haproxy": _kill_haproxy,
    **{f"{name}'s uwsgi master": _kill_uwsgi(name) for name in catalog.NAMES},
}


@dataclass(frozen=True)
class Fault:
    kind: str
    node: str = ""
    service: str = ""  # for KILL: a key of KILLERS
    pause: float = 0.0  # seconds the power stays off (EVERY_NODE, POWER)

    def __str__(self):
        return {
            EVERY_NODE: f"every node crashed at once, powered on {self.pause:.1f}s later",
            CRASH: f"{self.node} crashed (left to fencing)",
            POWER: f"{self.node} powered off through its BMC, on {self.pause:.1f}s later",
            PARTITION: f"{self.node} partitioned until fenced",
            KILL: f"kill -9 of {self.service} on {self.node}",
        }[self.kind]


def draw_one(rng, kinds):
    kind = rng.choice(kinds)
    if kind == EVERY_NODE:
        return Fault(kind, pause=round(rng.uniform(1, 4), 1))
    node = rng.choice(NODES)
    if kind == POWER:
        return Fault(kind, node, pause=round(rng.uniform(1, 4), 1))
    if kind == KILL:
        return Fault(kind, node, rng.choice(sorted(KILLERS)))
    return Fault(kind, node)


def draw_round(rng):
    """One round's faults: one of :data:`KINDS`; "two at once" is a node fault or a kill -9,
    with a kill -9 of another service or on another node: at most one node leaves."""
    kind = rng.choice(KINDS)
    if kind != TWO:
        return (draw_one(rng, (kind,)),)
    first = draw_one(rng, (*NODE_FAULTS, KILL))
    while True:
        second = draw_one(rng, (KILL,))
        if second != first and not (first.kind in NODE_FAULTS and second.node == first.node):
            return (first, second)


def short_plan(rng):
    """The rounds ``make check`` runs: every node at once, then a partition ending in
    fencing (of a node drawn from the seed)."""
    return [(Fault(EVERY_NODE, pause=2.0),), (Fault(PARTITION, rng.choice(NODES)),)]


# -- injecting a fault ---------------------------------------------------------------------------


def _init_pid(lab, node):
    return next(n.init_pid for n in lab.load().nodes if n.name == node)


def bmc_power(lab, node, action, tries=3):
    """``ipmitool chassis power ACTION`` against the node's BMC, as an operator would, again
    up to ``tries`` times if refused; returns a note when it was refused."""
    refusals = []
    for _ in range(tries):
        result = lab.ipmitool(node, ["chassis", "power", action])
        if result.ok:
            break
        refusals.append(result.output_line() or f"exit {result.returncode}")
        time.sleep(2)
    if not refusals:
        return ""
    state = "then done" if len(refusals) < tries else "never done"
    return f"BMC of {node} refused power {action} {len(refusals)}x ({refusals[-1]}), {state}"


def inject(lab, fault):
    """Do ``fault``; returns a note on what happened beyond the plan ("" when nothing).
    Raises AssertionError when the cluster did not do its part (a partitioned node that is not
    fenced)."""
    if fault.kind == EVERY_NODE:
        fault_crash_all_nodes(lab, _Fixed(fault.pause))
        return ""
    if fault.kind == CRASH:
        lab.crash(fault.node)
        return ""
    if fault.kind == POWER:
        notes = [bmc_power(lab, fault.node, "off")]
        time.sleep(fault.pause)
        notes.append(bmc_power(lab, fault.node, "on"))
        return "; ".join(n for n in notes if n)
    if fault.kind == PARTITION:
        return partition_until_fenced(lab, fault.node)
    KILLERS[fault.service](lab, fault.node)
    return ""


class _Fixed:
    """An rng whose uniform() is a value drawn before (lab_helpers' faults take an rng)."""

    def __init__(self, value):
        self.value = value

    def uniform(self, low, high):
        return self.value


def partition_until_fenced(lab, node, timeout=FENCE_TIMEOUT):
    """Cut ``node`` off until its BMC has rebooted it (the survivors fence it): a new init.
    The links are restored whatever happens (a rebooted node is plugged in anew)."""
    before = _init_pid(lab, node)
    started = time.monotonic()
    lab.partition([node])
    try:
        while time.monotonic() < started + timeout:
            now = _init_pid(lab, node)
            if now not in (None, before) and lab.node(node).is_running:
                return f"{node} rebooted by fencing {time.monotonic() - started:.0f}s after the cut"
            time.sleep(0.5)
    finally:
        try:
            lab.heal()
        except LabError as err:  # a node booting right now: its new link is up anyway
            print(f"heal after the partition of {node}: {err}")
    raise AssertionError(
        f"{node} partitioned: not rebooted by fencing within {timeout:.0f}s "
        f"(its BMC says power {lab.power_state(node)}, "
        f"{'running' if lab.node(node).is_running else 'not running'})"
    )


class Injection:
    """The faults of a round, each in a thread of its own, started together."""

    def __init__(self, lab, faults):
        self.notes: list[str] = []
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(lab, f), name=f"fault {f}", daemon=True)
            for f in faults
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, lab, fault):
        try:
            note = inject(lab, fault)
            if note:
                self.notes.append(note)
        except BaseException as err:  # noqa: BLE001 - the round reports it
            self.errors.append(err)

    @property
    def done(self):
        return not any(thread.is_alive() for thread in self._threads)


# -- what is whole -----------------------------------------------------------------------------

SERVICES = (
    "nodes",
    "fencing",
    "haproxy",
    "vip",
    "galera",
    "rabbitmq",
    "memcached",
    *catalog.NAMES,
)
CLONES = ("haproxy", "rabbitmq", "memcached", *catalog.NAMES)
VIPS = ("vip-public", "vip-database")  # the database VIP when database_path = haproxy


def quorate_status(lab, nodes=NODES):
    """(observer, crm_mon's detailed status) of the first node that has a DC with quorum, or
    (None, None)."""
    for node in nodes:
        try:
            status = crm_mon.detailed_status(lab.node_runner(node), timeout=10)
        except (LabError, CommandError, ET.ParseError):
            continue
        if status.dc and status.has_quorum:
            return node, status
    return None, None


def _active_on(status, resource, roles=("Started", "Promoted")):
    return {
        r.nodes[0]
        for r in status.instances(resource)
        if r.active and not r.failed and r.role in roles and r.nodes
    }


def _missing(status, resource, roles=("Started", "Promoted")):
    """What is wrong with ``resource`` on each node where it is not active: "" when none."""
    wrong = []
    for node in NODES:
        if node in _active_on(status, resource, roles):
            continue
        here = [r for r in status.instances(resource) if node in r.nodes]
        role = here[0].role if here else "Stopped"
        wrong.append(f"{node} {role}{' failed' if here and here[0].failed else ''}")
    return ", ".join(wrong)


def _galera_gap(lab, status):
    missing = _missing(status, "galera", ("Promoted",))
    if missing:
        return missing
    wrong = []
    for node in NODES:
        wsrep = lab_galera.wsrep_status(lab, node)
        seen = (
            wsrep.get("wsrep_cluster_status"),
            wsrep.get("wsrep_local_state_comment"),
            wsrep.get("wsrep_cluster_size"),
        )
        if seen != ("Primary", "Synced", str(len(NODES))):
            wrong.append(f"{node} wsrep {'/'.join(s or '?' for s in seen)}")
    return ", ".join(wrong)


def _rabbitmq_gap(lab, status, monitor_password):
    wrong = _missing(status, "rabbitmq")
    if wrong:
        return wrong
    members = {f"rabbit@{n}" for n in NODES}
    problems = []
    for node in NODES:
        seen = lab_rabbitmq.view(lab, node, monitor_password)
        if not seen:
            problems.append(f"{node}'s broker does not answer")
            continue
        down = sorted(m for m in members if not seen.get(m, (False, ()))[0])
        split = sorted(m for m, (_, parts) in seen.items() if parts)
        if down or split or set(seen) != members:
            problems.append(
                f"{node} sees {' '.join(down) or 'all'} "
                f"{'not running' if down else 'running'}{', partitions' if split else ''}"
            )
    return ", ".join(problems)


def gaps(lab, status, monitor_password):
    """{service: what is missing ("" when whole)} from ``status`` (None: no quorate view)."""
    if status is None:
        return {service: "no node with quorum answers" for service in SERVICES}
    online = set(status.online_nodes)
    devices = [r for r in status.resources if r.agent.startswith("stonith:")]
    stopped = [r.id for r in devices if not r.active or r.failed]
    found = {
        "nodes": ", ".join(f"{n} offline" for n in NODES if n not in online),
        "fencing": ", ".join(f"{d} stopped" for d in stopped) if devices else "no fence device",
        "vip": ", ".join(
            f"{vip} on {len(_active_on(status, vip))} nodes"
            for vip in VIPS
            if status.instances(vip) and len(_active_on(status, vip)) != 1
        ),
    }
    for clone in CLONES:
        found[clone] = _missing(status, clone)
    found["galera"] = _galera_gap(lab, status)
    if not found["rabbitmq"]:
        found["rabbitmq"] = _rabbitmq_gap(lab, status, monitor_password)
    return {service: found[service] for service in SERVICES}


def _failure_key(failure):
    return (failure.op_key, failure.node, failure.call, failure.last_rc_change)


def _fence_key(event):
    return (event.target, event.action, event.status, event.origin, event.completed)


class Watch:
    """What a round did to every service: call :meth:`poll` until it returns True (every
    service whole); ``back_after`` gives each service's seconds from the fault until it was
    whole for good (None: never seen out)."""

    def __init__(self, lab, monitor_password):
        self.lab = lab
        self.monitor_password = monitor_password
        self.started = time.monotonic()
        self.whole_since: dict[str, float | None] = {s: self.started for s in SERVICES}
        self.went_out: set[str] = set()
        self.last: dict[str, str] = {}
        self.last_status = None
        _, status = quorate_status(lab)
        self.failures_before = {_failure_key(f) for f in status.failures} if status else set()
        self.fencing_before = {_fence_key(e) for e in status.fence_history} if status else set()
        self.log_offsets = {node: _log_size(lab, node) for node in NODES}

    def poll(self):
        _, status = quorate_status(self.lab)
        now = time.monotonic()
        self.last = gaps(self.lab, status, self.monitor_password)
        if status is not None:
            self.last_status = status
        for service, gap in self.last.items():
            if gap:
                self.went_out.add(service)
                self.whole_since[service] = None
            elif self.whole_since[service] is None:
                self.whole_since[service] = now
        return not any(self.last.values())

    def new_failures(self):
        status = self.last_status
        if status is None:
            return []
        return [f for f in status.failures if _failure_key(f) not in self.failures_before]

    def new_fencing(self):
        status = self.last_status
        if status is None:
            return []
        return [e for e in status.fence_history if _fence_key(e) not in self.fencing_before]

    @property
    def noticed(self):
        """Whether the cluster saw the fault: a service out, a failed action, a fencing."""
        return bool(self.went_out or self.new_failures() or self.new_fencing())

    def back_after(self):
        back = {}
        for service in SERVICES:
            since = self.whole_since[service]
            out = service in self.went_out and since is not None
            back[service] = since - self.started if out else None
        return back

    def report(self):
        """What stayed out, the round's failed actions and fencing, and each node's log lines
        that say why."""
        out = [s for s, gap in self.last.items() if gap]
        lines = [f"  {s}: {self.last[s]}" for s in out]
        for failure in self.new_failures():
            lines.append(
                f"  failed: {failure.op_key} on {failure.node}: "
                f"{failure.exit_reason or failure.exit_status} ({failure.status})"
            )
        for event in self.new_fencing():
            lines.append(
                f"  fencing: {event.action} of {event.target} by {event.delegate or '?'} "
                f"for {event.origin}: {event.status}"
                + (f" ({event.exit_reason})" if event.exit_reason else "")
            )
        for node in NODES:
            lines.append(f"  {node}: {node_state(self.lab, node)}")
            words = {s.split("-")[0] for s in out if s not in ("nodes", "vip")}
            if "nodes" in out or "fencing" in out:
                words |= {"fenc", "stonith", "corosync", "quorum"}
            for line in log_lines(self.lab, node, self.log_offsets[node], words):
                lines.append(f"    {line}")
        return "\n".join(lines)


# -- on a node -----------------------------------------------------------------------------------

LOG = "var/log/pacemaker/pacemaker.log"
TELLING = ("error", "ocf-exit-reason", "warning", "crit", "timed out", "fenced")


def _log_size(lab, node):
    try:
        return (lab.directory / node / LOG).stat().st_size
    except FileNotFoundError:
        return 0


def log_lines(lab, node, offset, words, count=15):
    """The last ``count`` lines of ``node``'s pacemaker.log after ``offset`` that tell of a
    problem (an error, a warning, an exit reason) and name one of ``words``."""
    try:
        with open(lab.directory / node / LOG, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ["(no pacemaker.log)"]
    telling = [
        line.strip()
        for line in text.splitlines()
        if any(t in line.lower() for t in TELLING)
        and (not words or any(w in line.lower() for w in words))
    ]
    return [line[:300] for line in telling[-count:]]


def node_state(lab, node):
    """Power, and whether corosync and pacemakerd run on ``node``."""
    power = lab.power_state(node)
    handle = lab.node(node)
    if not handle.is_running:
        return f"power {power}, not running"
    running = []
    for daemon in ("corosync", "pacemakerd"):
        try:
            found = handle.runner.run(["/bin/pidof", daemon], timeout=10).ok
        except CommandError:
            found = False
        running.append(f"{daemon} {'runs' if found else 'does not run'}")
    return f"power {power}, running, {', '.join(running)}"
