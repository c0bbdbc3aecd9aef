"""Benchmark: ocf:stackha:rabbitmq next to resource-agents' ocf:heartbeat:rabbitmq-cluster, in
the same lab, under the same faults.

One 3-node namespace lab (``stackha.lab``, subnet ``--subnet``, default 192.168.215.0/24) with
RabbitMQ provisioned on every node (``stackha.lab.rabbitmq``: the same Erlang cookie, a
configuration per node with ``cluster_partition_handling = pause_minority``, the credentials
files) and ``stonith-enabled=false``. For each agent in turn (ours first), on empty data
directories, as a clone with each agent's own default operations:

- ours: ``pcs resource create rabbitmq ocf:stackha:rabbitmq <clone_options()>`` (the lab's
  users and policies, ``clone notify=true interleave=true``);
- the incumbent: ``pcs resource create rabbitmq ocf:heartbeat:rabbitmq-cluster clone
  notify=true interleave=true`` (``set_policy`` left unset; ``--incumbent-ordered`` adds
  ``ordered=true``, which deployments of that agent usually give its clone).

1. **cold start**: from ``pcs resource create`` until the cluster is whole;
2. **kill -9 of one broker** (node2's Erlang VM, by pid inside the node): from the kill until
   whole again;
3. **one node crashes** (node3: ``Lab.crash``, every process SIGKILLed) and is powered on again
   at once, as a BMC reset would: from the crash until whole again (``--no-crash`` skips it).

"Whole" is judged the same way for both agents and without either's help (the incumbent does
not create our monitoring user): ``rabbitmqctl cluster_status --formatter json`` run inside
each node in turn must answer, with the three members all running and no partition. One call
costs about 0.7 s of CPU; the nodes are asked one after the other (stopping at the first that
is not whole) and the poll repeats 1 s after the previous one ended, so a figure includes up to
one poll (about 2 s) past the moment the cluster became whole, for both agents alike.

Each wait is capped at ``--limit`` seconds (default 300); a capped round is reported as such, and
after every round the failed actions are cleaned up (``pcs resource cleanup``). Between the
agents the resource is disabled, every broker is confirmed gone, the resource is deleted and
each node's ``/var/lib/rabbitmq/mnesia`` is emptied (the cookie is kept), so both start from the
same state. The failed actions crm_mon shows after each round are recorded (``--json``).

4. **CPU per monitor**: ``--monitor-runs`` (default 20, after one warm-up call) calls of each
   agent's monitor (depth 0) while the cluster is whole, run inside node1 (``nsenter``) with the
   environment Pacemaker gives it (pacemaker-execd's own, read from /proc, and
   ``CRM_meta_interval=10000``, the agent's monitor timeout,
   ``crm_feature_set``, ``on_node``, ``clone_max``...; OCF_RESOURCE_INSTANCE as Pacemaker passes
   it for this anonymous clone, read from the node attribute the incumbent names after it); per
   call the wall time and the CPU time (user + sys) of the whole call tree from ``os.wait4``:
   nsenter, the agent and every program it runs (rabbitmqctl's Erlang VM, crm_attribute,
   cibadmin...). nsenter costs both the same.

It prints a table with both agents' figures and the ratios ours / incumbent; the aim, every
figure of ours better than the incumbent's, is reported, not asserted. Every command runs inside
the lab's own namespaces; the lab is torn down with ``Lab.down`` whatever happens (also on Ctrl-C
and SIGTERM). Run as root on a checkout after ``make venv`` (RabbitMQ and resource-agents
installed: ``make deps``)::

    .venv/bin/python bench/rabbitmq.py [--limit 300] [--monitor-runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.lab.rabbitmq import NODES, kill_broker
from stackha.runner import CommandError, Result
from stackha.services.rabbitmq import RabbitError, node_name, parse_cluster_status

OURS = "ocf:stackha:rabbitmq"
THEIRS = "ocf:heartbeat:rabbitmq-cluster"
AGENT_PATHS = {
    OURS: "/usr/lib/ocf/resource.d/stackha/rabbitmq",
    THEIRS: "/usr/lib/ocf/resource.d/heartbeat/rabbitmq-cluster",
}
# Each agent's monitor timeout (its meta-data), which Pacemaker passes as CRM_meta_timeout.
MONITOR_TIMEOUT_MS = {OURS: "30000", THEIRS: "40000"}
RESOURCE = "rabbitmq"
SUBNET = "192.168.215.0/24"
CTL = "/usr/sbin/rabbitmqctl"
MNESIA = "var/lib/rabbitmq/mnesia"  # under each node's root
LAST_KNOWN = "rmq-node-attr-last-known-"  # the incumbent's node attribute, + the instance
POLL_S = 1.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_in(lab: Lab, node: str, argv: list[str], timeout: float = 60.0) -> Result:
    return lab.node_runner(node).run(argv, timeout=timeout)


def pcs(lab: Lab, *argv: str) -> str:
    result = run_in(lab, "node1", ["pcs", *argv], timeout=240)
    if not result.ok:
        raise RuntimeError(f"pcs {' '.join(argv)}: {result.stdout}{result.stderr}")
    return str(result.stdout)


def wait(ready: Callable[[], bool], limit: float, interval: float = POLL_S) -> Optional[float]:
    """Seconds until ``ready``, or None when ``limit`` passed first."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if ready():
            return time.monotonic() - started
        time.sleep(interval)
    return None


# -- what the lab's RabbitMQ is doing, the same questions for both agents ---------------------


def node_whole(lab: Lab, node: str) -> bool:
    """``node``'s broker answers and sees the three members running, with no partition."""
    members = {node_name(n) for n in NODES}
    try:
        result = run_in(lab, node, [CTL, "cluster_status", "--formatter", "json"], timeout=30)
        if not result.ok:
            return False
        status = parse_cluster_status(result.stdout)
    except (LabError, CommandError, RabbitError):
        return False
    return (
        set(status.members) == members and set(status.running) == members and not status.partitions
    )


def whole(lab: Lab) -> bool:
    return all(node_whole(lab, node) for node in NODES)


def no_broker(lab: Lab) -> bool:
    """No RabbitMQ broker (the Erlang VM booted with ``-s rabbit boot``) on any node; the
    short-lived VMs of rabbitmqctl do not count."""
    return all(
        run_in(lab, node, ["/usr/bin/pgrep", "-f", "rabbit boot"], timeout=10).returncode == 1
        for node in NODES
    )


def failed_actions(lab: Lab) -> list[str]:
    """The failed actions crm_mon shows, as ``node: operation (status)``."""
    try:
        result = run_in(lab, "node1", ["crm_mon", "-1", "--output-as=xml"], timeout=30)
    except (LabError, CommandError):
        return ["crm_mon did not answer"]
    found = []
    for match in re.finditer(r"<failure ([^>]*)>", result.stdout):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        why = fields.get("exitreason") or fields.get("exitstatus") or fields.get("status", "?")
        found.append(f"{fields.get('node', '?')}: {fields.get('task', '?')} ({why})")
    return found


def instance_name(lab: Lab) -> Optional[str]:
    """OCF_RESOURCE_INSTANCE as Pacemaker passed it to the incumbent: the suffix of the node
    attribute the incumbent writes (``rmq-node-attr-last-known-${OCF_RESOURCE_INSTANCE}``)."""
    try:
        result = run_in(
            lab,
            "node1",
            ["cibadmin", "-Q", "--xpath", f"//nvpair[starts-with(@name, '{LAST_KNOWN}')]"],
            timeout=30,
        )
    except (LabError, CommandError):
        return None
    names = re.findall(rf'name="{LAST_KNOWN}([^"]+)"', result.stdout)
    return names[0] if names else None


# -- the resource's life -------------------------------------------------------------------


def create(lab: Lab, agent: str, ordered: bool) -> None:
    if agent == OURS:
        pcs(lab, "resource", "create", RESOURCE, agent, *lab_rabbitmq.clone_options())
    else:
        extra = ["ordered=true"] if ordered else []
        pcs(
            lab,
            "resource",
            "create",
            RESOURCE,
            agent,
            "clone",
            "notify=true",
            "interleave=true",
            *extra,
        )


def delete(lab: Lab) -> None:
    """Stopped first, then removed (a delete right after a cleanup can remove a resource
    without stopping it, see bench/galera.py)."""
    pcs(lab, "resource", "disable", RESOURCE, "--wait=240")
    if wait(lambda: no_broker(lab), 120) is None:
        raise RuntimeError("a broker still runs after the resource was disabled")
    pcs(lab, "resource", "delete", RESOURCE)


def reset_data(lab: Lab) -> None:
    """Every node's mnesia directory emptied (no broker may run); the cookie stays."""
    if not no_broker(lab):
        raise RuntimeError("a broker still runs after the resource was deleted")
    for node in NODES:
        mnesia = lab.node(node).root / MNESIA
        mnesia.mkdir(parents=True, exist_ok=True)
        for entry in mnesia.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    lab_rabbitmq.provision(lab)  # ownership of the (re-made) directories; same secrets


def cleanup(lab: Lab, what: str) -> None:
    try:
        pcs(lab, "resource", "cleanup", RESOURCE)
    except (RuntimeError, LabError, CommandError) as err:
        log(f"{what}: cleanup failed ({str(err).splitlines()[0]}); going on")


def settle(lab: Lab) -> None:
    """The re-probes after a cleanup done, and the cluster whole, before anything else."""
    try:
        run_in(lab, "node1", ["crm_resource", "--wait", "--timeout=120s"], timeout=130)
    except (LabError, CommandError) as err:
        log(f"crm_resource --wait: {err}")
    wait(lambda: whole(lab), 120)


def fault_round(
    lab: Lab, what: str, fault: Callable[[], None], limit: float, record: dict[str, object]
) -> Optional[float]:
    if wait(lambda: whole(lab), limit) is None:
        log(f"{what}: not whole before the fault, skipped")
        record["skipped"] = True
        return None
    log(what)
    started = time.monotonic()
    try:
        fault()
    except (LabError, CommandError) as err:
        log(f"{what}: the fault failed: {err}")
        record["fault_failed"] = str(err)
        return None
    noticed = wait(lambda: not whole(lab), 60, interval=0.2)
    if noticed is None:
        log(f"{what}: never noticed")
        record["never_noticed"] = True
        return None
    remaining = limit - (time.monotonic() - started)
    recovered = wait(lambda: whole(lab), remaining)
    seconds = None if recovered is None else time.monotonic() - started
    log(f"{what}: {'capped' if seconds is None else f'{seconds:.1f}s'}")
    actions = failed_actions(lab)
    record["failed_actions"] = actions
    if actions:
        log(f"{what}: failed actions: {'; '.join(actions)}")
    cleanup(lab, what)
    settle(lab)
    return seconds
    return seconds


def crash_and_power_on(lab: Lab, node: str) -> None:
    lab.crash(node)
    lab.set_power(node, "on")


# -- the monitor's cost -------------------------------------------------------------------


def execd_environment(lab: Lab) -> dict[str, str]:
    """The environment of node1's pacemaker-execd, which the agents it runs inherit (PATH,
    LC_ALL, HA_logfacility...)."""
    pid = run_in(lab, "node1", ["/bin/pidof", "pacemaker-execd"], timeout=10).stdout.split()
    if not pid:
        raise LabError("node1: pacemaker-execd is not running")
    result = run_in(lab, "node1", ["/bin/cat", f"/proc/{pid[0]}/environ"], timeout=10)
    return dict(entry.split("=", 1) for entry in result.stdout.split("\0") if "=" in entry)


def monitor_cost(lab: Lab, agent: str, instance: str, runs: int) -> dict[str, object]:
    env = {
        **execd_environment(lab),
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESOURCE_TYPE": agent.rsplit(":", 1)[1],
        "OCF_RESOURCE_PROVIDER": agent.split(":")[1],
        "OCF_RESKEY_crm_feature_set": "3.16.1",
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_timeout": MONITOR_TIMEOUT_MS[agent],
        "OCF_RESKEY_CRM_meta_on_node": "node1",
        "OCF_RESKEY_CRM_meta_on_node_uuid": "1",
        "OCF_RESKEY_CRM_meta_clone": "0",
        "OCF_RESKEY_CRM_meta_clone_max": "3",
        "OCF_RESKEY_CRM_meta_clone_node_max": "1",
        "OCF_RESKEY_CRM_meta_notify": "true",
        "OCF_RESKEY_CRM_meta_interleave": "true",
        "OCF_RESKEY_CRM_meta_globally_unique": "false",
    }
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    argv = lab.node_runner("node1").wrap(
        ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), AGENT_PATHS[agent], "monitor"]
    )
    walls, cpus, codes = [], [], []
    for index in range(runs + 1):
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        errors = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        process.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log(f"{agent} monitor exited {code}: {errors.strip()[-300:]}")
        if index:  # the first call warms the caches
            walls.append(wall * 1000)
            cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
            codes.append(code)
    return {
        "wall_ms": statistics.median(walls),
        "cpu_ms": statistics.median(cpus),
        "failed_calls": sum(1 for c in codes if c != 0),
        "instance": instance,
        "wall_samples_ms": walls,
        "cpu_samples_ms": cpus,
    }


# -- one agent ------------------------------------------------------------------------------


def measure(
    lab: Lab, agent: str, args: argparse.Namespace, state: dict[str, str]
) -> dict[str, object]:
    results: dict[str, object] = {}
    log(f"{agent}: cold start")
    started = time.monotonic()
    create(lab, agent, args.incumbent_ordered)
    cold = wait(lambda: whole(lab), args.limit)
    cold_s = None if cold is None else time.monotonic() - started
    results["cold_start_s"] = cold_s
    actions = failed_actions(lab)
    results["cold_start_failed_actions"] = actions
    log(f"{agent}: cold start {'capped' if cold_s is None else f'{cold_s:.1f}s'}")
    if actions:
        log(f"{agent}: failed actions: {'; '.join(actions)}")
    if cold_s is None or actions:
        cleanup(lab, f"{agent}: cold start")
        settle(lab)
    if agent == THEIRS:
        found = instance_name(lab)
        if found:
            state["instance"] = found
        log(f"OCF_RESOURCE_INSTANCE as Pacemaker passes it: {found or 'not found'}")
    results["monitor"] = {}
    if whole(lab):
        monitor = monitor_cost(lab, agent, state["instance"], args.monitor_runs)
        results["monitor"] = monitor
        wall, cpu = monitor["wall_ms"], monitor["cpu_ms"]
        log(f"{agent}: monitor median wall {wall:.1f} ms, cpu {cpu:.1f} ms")
    else:
        log(f"{agent}: not whole, monitor not measured")
    kill: dict[str, object] = {}
    results["kill_one_s"] = fault_round(
        lab,
        f"{agent}: kill -9 of node2's broker",
        lambda: kill_broker(lab, "node2"),
        args.limit,
        kill,
    )
    results["kill_one"] = kill
    if not args.no_crash:
        crash: dict[str, object] = {}
        results["crash_one_s"] = fault_round(
            lab,
            f"{agent}: node3 crashes and is powered on",
            lambda: crash_and_power_on(lab, "node3"),
            args.limit,
            crash,
        )
        results["crash_one"] = crash
    return results


# -- the report ------------------------------------------------------------------------------

ROWS = (
    ("cold start to three whole (s)", "cold_start_s"),
    ("kill -9 of node2's broker (s)", "kill_one_s"),
    ("node3 crashes, powered on (s)", "crash_one_s"),
)


def seconds(value: object, measured: bool) -> str:
    if not measured:
        return "-"
    return "capped" if value is None else f"{value:.1f}"


def compare(a: object, b: object, limit: float) -> tuple[str, Optional[bool]]:
    """(ratio text, whether ours is better); a capped figure counts as at least ``limit``."""
    if isinstance(a, float) and isinstance(b, float) and b:
        return f"{a / b:.2f}x", a < b
    if isinstance(a, float) and b is None:
        return f"<{a / limit:.2f}x", a < limit
    if a is None and isinstance(b, float):
        return f">{limit / b:.2f}x", False
    return "-", None


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, instance: str) -> str:
    ours, theirs = results.get(OURS, {}), results.get(THEIRS, {})
    incumbent = "clone notify=true interleave=true" + (
        " ordered=true" if args.incumbent_ordered else ""
    )
    lines = [
        f"rabbitmq benchmark: {OURS} and {THEIRS}, 3-node lab, cap {args.limit:.0f} s",
        f"ours: clone_options() (notify=true interleave=true); incumbent: {incumbent}",
        "whole: rabbitmqctl cluster_status on every node, three members running, no partition",
        f"monitor: {args.monitor_runs} calls in node1 via nsenter, "
        f"OCF_RESOURCE_INSTANCE={instance}",
        "",
        f"{'':34} {'ours':>8} {'incumbent':>10} {'ratio':>8}",
    ]
    verdicts: list[Optional[bool]] = []
    for title, key in ROWS:
        if key == "crash_one_s" and args.no_crash:
            continue
        a, b = ours.get(key), theirs.get(key)
        ratio, better = compare(a, b, args.limit)
        verdicts.append(better)
        lines.append(
            f"{title:34} {seconds(a, key in ours):>8} {seconds(b, key in theirs):>10} {ratio:>8}"
        )
    for what in ("wall_ms", "cpu_ms"):
        a = (ours.get("monitor") or {}).get(what)
        b = (theirs.get("monitor") or {}).get(what)
        ratio, better = compare(a, b, float("inf")) if a and b else ("-", None)
        verdicts.append(better)
        title = f"monitor, median {what.replace('_ms', '')} (ms)"
        text_a = f"{a:.1f}" if a else "-"
        text_b = f"{b:.1f}" if b else "-"
        lines.append(f"{title:34} {text_a:>8} {text_b:>10} {ratio:>8}")
    failed = [
        f"{name} {(r.get('monitor') or {}).get('failed_calls')}"
        for name, r in (("ours", ours), ("incumbent", theirs))
        if (r.get("monitor") or {}).get("failed_calls")
    ]
    if failed:
        lines.append(f"(monitor calls that did not exit 0: {', '.join(failed)})")
    met = bool(verdicts) and all(v is True for v in verdicts)
    lines += [
        "",
        "aim (reported, not asserted): every figure of ours better than the incumbent's: "
        + ("MET" if met else "NOT MET"),
    ]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    found = {}
    for package in ("rabbitmq-server", "erlang-base", "resource-agents", "pacemaker"):
        result = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        found[package] = result.stdout.strip() if result.returncode == 0 else "?"
    return found


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=300.0)
    parser.add_argument("--monitor-runs", type=int, default=20)
    parser.add_argument("--no-crash", action="store_true", help="skip the node crash round")
    parser.add_argument(
        "--incumbent-ordered", action="store_true", help="create the incumbent's clone ordered"
    )
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json")
    parser.add_argument(
        "--release",
        help="nodes of this Debian release (bookworm, trixie); default: the host's own files",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root: run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    # the lab installs the stackha package (built from this checkout) on its nodes
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-rabbitmq-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    results: dict[str, dict[str, Any]] = {}
    # Pacemaker passes an anonymous clone's instance by its primitive's name; confirmed (and
    # corrected if need be) from the incumbent's node attribute before its monitor is measured.
    state = {"instance": RESOURCE}
    status = 0
    try:
        lab.up(nodes=3, subnet=args.subnet, timeout=600, release_name=args.release)
        lab_rabbitmq.provision(lab)
        pcs(lab, "property", "set", "stonith-enabled=false")
        for index, agent in enumerate((OURS, THEIRS)):
            if index:
                reset_data(lab)
            results[agent] = measure(lab, agent, args, state)
            log(f"{agent}: deleting the resource")
            delete(lab)
    except Exception:  # the figures so far are still printed
        log("the run failed:\n" + traceback.format_exc())
        status = 1
    finally:
        log("lab down")
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(results, args, state["instance"]), end="")
    if args.json:
        data = {"versions": versions(), "instance": state["instance"], "results": results}
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
