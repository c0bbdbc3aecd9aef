"""Benchmark: ocf:stackha:galera next to resource-agents' ocf:heartbeat:galera, in the same lab,
under the same faults.

One 3-node namespace lab (``stackha.lab``) with MariaDB Galera provisioned on every node
(``stackha.lab.galera``) and ``stonith-enabled=false``. For each agent in turn (ours first), on
freshly initialised datadirs, as a promotable clone with ``promoted-max=3`` and each agent's own
default operations (ours with ``notify=true``, which it asks for; the incumbent has no notify):

1. **cold start**: from ``pcs resource create`` until every node is Promoted in crm_mon and,
   asked over SQL, Primary and Synced in a component of three;
2. **kill -9 of one mariadbd** (node2's, by pid inside the node): from the kill until the same;
3. **one node crashes** (node3: ``Lab.crash``, every process SIGKILLed) and is powered on again
   at once, as a BMC reset would: from the crash until the same;
4. **kill -9 of every mariadbd at once**: from the kills until the same.

Each wait is capped at ``--limit`` seconds (default 400: the incumbent needed up to 332 s for
case 4 on this machine); a capped round is reported as such, and the failed actions are
cleaned up (``pcs resource cleanup``) before the next fault. Between the agents the resource is
deleted, every mariadbd is confirmed gone, and each node's datadir is emptied and initialised
again, so both start from the same state.

5. **CPU per monitor**: ``--monitor-runs`` (default 20) calls of each agent's Promoted-role
   monitor while all three are Promoted, run inside node1 (``nsenter``) with the environment
   Pacemaker gives it (parameters, ``CRM_meta_interval=10000``, ``CRM_meta_role``,
   ``crm_feature_set``); per call the wall time and the CPU time (user + sys) of the whole call
   tree from ``os.wait4``: nsenter, the agent and every program it runs (the mariadb client,
   crm_attribute, crm_mon...). nsenter costs both the same.

It prints a table with both agents' figures and the ratios ours / incumbent; the issue's aims
are reported, not asserted: every recovery under 60 s, and monitor CPU not above the
incumbent's. Every address used is inside the lab's own namespaces; the lab is torn down with
``Lab.down`` whatever happens. Run as root on a checkout after ``make venv`` (MariaDB Galera
installed: ``make deps``)::

    .venv/bin/python bench/galera.py [--limit 400] [--monitor-runs 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from stackha.lab import galera as lab_galera
from stackha.lab.galera import NODES, healthy, kill_mariadbd
from stackha.lab.lab import Lab

OURS = "ocf:stackha:galera"
THEIRS = "ocf:heartbeat:galera"
AGENT_PATHS = {
    OURS: "/usr/lib/ocf/resource.d/stackha/galera",
    THEIRS: "/usr/lib/ocf/resource.d/heartbeat/galera",
}
LOG = "/var/log/mysql/error.log"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_in(
    lab: Lab, node: str, argv: list[str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    wrapped = lab.node_runner(node).wrap(argv)
    return subprocess.run(wrapped, capture_output=True, text=True, timeout=timeout)


def pcs(lab: Lab, *argv: str) -> None:
    result = run_in(lab, "node1", ["pcs", *argv], timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"pcs {' '.join(argv)}: {result.stdout}{result.stderr}")


def wait(ready: Callable[[], bool], limit: float) -> Optional[float]:
    """Seconds until ``ready``, or None when ``limit`` passed first."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if ready():
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def reset_datadirs(lab: Lab) -> None:
    """Every node's datadir emptied and initialised again (no mariadbd may run)."""
    for node in NODES:
        if (
            wait(lambda node=node: run_in(lab, node, ["pidof", "mariadbd"]).returncode != 0, 60)
            is None
        ):
            raise RuntimeError(f"{node}: mariadbd still runs after the resource was deleted")
        datadir = lab.node(node).root / "var/lib/mysql"
        for entry in datadir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    lab_galera.provision(lab)


def create(lab: Lab, agent: str, address: str) -> None:
    argv = ["resource", "create", "galera", agent, f"wsrep_cluster_address={address}"]
    if agent == THEIRS:
        argv.append(f"log={LOG}")
    argv += ["promotable", "promoted-max=3"]
    if agent == OURS:
        argv.append("notify=true")
    pcs(lab, *argv)


def no_mariadbd(lab: Lab) -> bool:
    return all(run_in(lab, node, ["pidof", "mariadbd"]).returncode != 0 for node in NODES)


def delete(lab: Lab) -> None:
    """Stopped first, then removed: a delete right after a cleanup (the history erased, the
    re-probes pending) removes the resource without stopping it — a pcs/Pacemaker race seen
    here — and leaves mariadbd running unmanaged."""
    pcs(lab, "resource", "disable", "galera", "--wait=180")
    if wait(lambda: no_mariadbd(lab), 120) is None:
        raise RuntimeError("mariadbd still runs after the resource was disabled")
    pcs(lab, "resource", "delete", "galera")


def fault_round(lab: Lab, what: str, fault: Callable[[], None], limit: float) -> Optional[float]:
    if wait(lambda: healthy(lab), limit) is None:
        log(f"{what}: not healthy before the fault, skipped")
        return None
    log(what)
    started = time.monotonic()
    fault()
    noticed = wait(lambda: not healthy(lab), 60)
    if noticed is None:
        log(f"{what}: never noticed")
        return None
    remaining = limit - (time.monotonic() - started)
    recovered = wait(lambda: healthy(lab), remaining)
    seconds = None if recovered is None else time.monotonic() - started
    log(f"{what}: {'capped' if seconds is None else f'{seconds:.1f}s'}")
    try:
        pcs(lab, "resource", "cleanup", "galera")
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        # After a capped round an action may still be in flight (the incumbent's 300 s
        # promote): the controller does not answer a cleanup then. The figure stands.
        log(f"{what}: cleanup failed ({str(err).splitlines()[0]}); going on")
    wait(lambda: healthy(lab), 120)  # the re-probes after a cleanup, before anything else
    return seconds


def crash_and_reset(lab: Lab, node: str) -> None:
    lab.crash(node)
    lab.set_power(node, "on")


def monitor_cost(lab: Lab, agent: str, address: str, runs: int) -> dict[str, float]:
    env = {
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": "galera",
        "OCF_RESKEY_crm_feature_set": "3.16.1",
        "OCF_RESKEY_wsrep_cluster_address": address,
        "OCF_RESKEY_CRM_meta_interval": "10000",
        "OCF_RESKEY_CRM_meta_timeout": "30000",
        "OCF_RESKEY_CRM_meta_role": "Promoted",
        "OCF_RESKEY_CRM_meta_on_node": "node1",
        "OCF_RESKEY_CRM_meta_promotable": "true",
        "OCF_RESKEY_CRM_meta_promoted_max": "3",
        "OCF_RESKEY_CRM_meta_clone_max": "3",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    }
    if agent == THEIRS:
        env["OCF_RESKEY_log"] = LOG
    argv = lab.node_runner("node1").wrap(
        ["/usr/bin/env", *(f"{k}={v}" for k, v in env.items()), AGENT_PATHS[agent], "monitor"]
    )
    walls, cpus = [], []
    for index in range(runs + 1):
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 8:
            raise RuntimeError(f"{agent} monitor exited {code}, not 8 (Promoted)")
        if index:  # the first call warms the caches
            walls.append(wall * 1000)
            cpus.append((usage.ru_utime + usage.ru_stime) * 1000)
    return {"wall_ms": statistics.median(walls), "cpu_ms": statistics.median(cpus)}


def measure(lab: Lab, agent: str, address: str, args: argparse.Namespace) -> dict[str, object]:
    log(f"{agent}: cold start")
    started = time.monotonic()
    create(lab, agent, address)
    cold = wait(lambda: healthy(lab), args.limit)
    cold_s = None if cold is None else time.monotonic() - started
    log(f"{agent}: cold start {'capped' if cold_s is None else f'{cold_s:.1f}s'}")
    if cold_s is None:
        pcs(lab, "resource", "cleanup", "galera")
    monitor = monitor_cost(lab, agent, address, args.monitor_runs) if cold_s else {}
    results: dict[str, object] = {"cold_start_s": cold_s, "monitor": monitor}
    results["kill_one_s"] = fault_round(
        lab,
        f"{agent}: kill -9 of node2's mariadbd",
        lambda: kill_mariadbd(lab, "node2"),
        args.limit,
    )
    results["crash_one_s"] = fault_round(
        lab,
        f"{agent}: node3 crashes and is powered on",
        lambda: crash_and_reset(lab, "node3"),
        args.limit,
    )
    results["kill_all_s"] = fault_round(
        lab, f"{agent}: kill -9 of every mariadbd", lambda: kill_mariadbd(lab, *NODES), args.limit
    )
    return results


def seconds(value: object) -> str:
    return "capped" if value is None else f"{value:.1f}"


def render(results: dict[str, dict[str, object]], limit: float) -> str:
    ours, theirs = results[OURS], results.get(THEIRS, {})
    rows = [
        ("cold start to all Promoted (s)", "cold_start_s"),
        ("kill -9 of one mariadbd (s)", "kill_one_s"),
        ("one node crashes, powered on (s)", "crash_one_s"),
        ("kill -9 of all three (s)", "kill_all_s"),
    ]
    lines = [
        f"galera benchmark: {OURS} and {THEIRS}, 3-node lab, promoted-max=3, cap {limit:.0f} s",
        "",
        f"{'':36} {'ours':>8} {'incumbent':>10} {'ratio':>7}",
    ]
    for title, key in rows:
        a, b = ours.get(key), theirs.get(key)
        ratio = f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) and b else "-"
        lines.append(f"{title:36} {seconds(a):>8} {seconds(b):>10} {ratio:>7}")
    for what in ("wall_ms", "cpu_ms"):
        a = (ours.get("monitor") or {}).get(what)  # type: ignore[union-attr]
        b = (theirs.get("monitor") or {}).get(what)  # type: ignore[union-attr]
        ratio = f"{a / b:.2f}x" if a and b else "-"
        title = f"Promoted monitor, median {what.replace('_ms', '')} (ms)"
        lines.append(f"{title:36} {a or 0:8.1f} {b or 0:10.1f} {ratio:>7}")
    recoveries = [ours.get(k) for k in ("kill_one_s", "crash_one_s", "kill_all_s")]
    met = all(isinstance(v, float) and v < 60 for v in recoveries)
    cpu_ours = (ours.get("monitor") or {}).get("cpu_ms")  # type: ignore[union-attr]
    cpu_theirs = (theirs.get("monitor") or {}).get("cpu_ms")  # type: ignore[union-attr]
    lines += [
        "",
        "aims (reported, not asserted):",
        f"  every recovery of ours under 60 s: {'MET' if met else 'NOT MET'}",
        "  monitor CPU not above the incumbent's: "
        + ("MET" if cpu_ours and cpu_theirs and cpu_ours <= cpu_theirs else "NOT MET"),
    ]
    return "\n".join(lines) + "\n"


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=400.0)
    parser.add_argument("--monitor-runs", type=int, default=20)
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
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-galera-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    results: dict[str, dict[str, object]] = {}
    try:
        lab.up(nodes=3, timeout=600, release_name=args.release)
        address = lab_galera.provision(lab)
        pcs(lab, "property", "set", "stonith-enabled=false")
        for index, agent in enumerate((OURS, THEIRS)):
            if index:
                reset_datadirs(lab)
            results[agent] = measure(lab, agent, address, args)
            delete(lab)
    finally:
        log("lab down")
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(results, args.limit), end="")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
