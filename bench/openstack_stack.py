"""Benchmark: ``make lab`` from a machine with the packages installed to every service healthy,
and the time from crashing the VIP's node to keystone answering through the VIP again — with
the whole stack as the templates make it and fencing on.

What it times, in one run: ``stackha lab up`` (3 namespace nodes, BMC and PDU simulators) and
``stackha lab deploy``'s steps (stackha.lab.deploy: provisioning, the infrastructure CIB
rendered/checked/applied, Galera and RabbitMQ healthy, keystone and nova-api provisioned, the
full CIB applied, every clone on every node, the APIs through the VIP, the fence devices);
then ``--rounds`` crashes of the node holding the VIP while a client in the lab's network
calls the VIP without pause (tests/openstack_checks.Client: keystone GET /v3 and nova GET /
in turn, a token every fifth request, 3 s timeout, 50 ms apart): the seconds until the VIP
runs on a survivor, until every request succeeds again, until the crashed node is fenced
(its BMC reboots it: fence_stackha_ipmi), until it serves again and until every service runs
on all three nodes (Galera Synced, RabbitMQ one cluster).

There is no incumbent to run side by side: no tool deploys this stack from a site file, and no
distribution packages OCF agents for keystone or nova-api. The figures stand against the
client's request timeout (3 s) and the cluster's reaction times.

Run as root on a checkout after ``make venv`` (the Debian packages from ``make deps``)::

    .venv/bin/python bench/openstack_stack.py --rounds 2

It uses its own lab on 192.168.219.0/24 (``--subnet``) and takes it down whatever happens.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from stack_checks import crash_vip_holder, deploy_stack
from stackha.lab.lab import Lab

SUBNET = "192.168.219.0/24"
LOGS = {
    "pacemaker": "var/log/pacemaker/pacemaker.log",
    "corosync": "var/log/cluster/corosync.log",
}
# "Dec 04 00:02:37.679 node2 pacemaker-fenced [42] (fn) \tinfo: ..." and, with corosync's
# timestamp: hires, "Dec 04 00:02:36.123 [26] node1 corosync notice [TOTEM ] ...".
STAMP = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) ")
# The lines of a failover worth a timeline: membership, the DC's election, the fencing, the VIP.
EVENTS = re.compile(
    r"processor failed|new membership|Members left|Completed service synchronization|"
    r"state is now lost|is dead|S_ELECTION|S_INTEGRATION -> S_FINALIZE|S_POLICY_ENGINE ->|"
    r"will be fenced|Requesting fencing|wants to fence|Requesting that|Requesting peer|"
    r"Operation '(?:reboot|off|on)'|was terminated|Initiating (?:start|stop) operation vip|"
    r"Result of start operation for vip|Calculated transition|Transition \d+ .*Complete"
)
COLUMNS = (
    ("VIP moved s", "moved_after"),
    ("recovered s", "recovered_after"),
    ("fenced s", "fenced_after"),
    ("serves s", "serves_after"),
    ("all back s", "whole_after"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def stamp_of(line: str, year: int) -> Optional[float]:
    match = STAMP.match(line)
    if not match:
        return None
    text = match.group(1)
    shape = "%Y %b %d %H:%M:%S.%f" if "." in text else "%Y %b %d %H:%M:%S"
    moment = datetime.datetime.strptime(f"{year} {text}", shape)
    return moment.timestamp()  # local time, as the nodes (which share the host's zone) log


def timeline(lab: Lab, crashed_at: float, holder: str, seconds: float = 60.0) -> list[str]:
    """The failover's log lines of every node but ``holder`` from ``crashed_at`` on (within
    ``seconds``), each with its offset from the crash, in time order."""
    year = time.gmtime(crashed_at).tm_year
    found: list[tuple[float, str]] = []
    for node in ("node1", "node2", "node3"):
        if node == holder:
            continue
        for what, path in LOGS.items():
            try:
                text = (lab.node(node).root / path).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                moment = stamp_of(line, year)
                if moment is None or not crashed_at - 0.5 <= moment <= crashed_at + seconds:
                    continue
                if EVENTS.search(line):
                    body = " ".join(line[len(STAMP.match(line).group(0)) :].split())  # type: ignore[union-attr]
                    found.append((moment - crashed_at, f"{node} {what}: {body[:170]}"))
    return [f"  +{offset:6.2f}s {text}" for offset, text in sorted(found)]


def keep_logs(lab: Lab, target: Path) -> None:
    """Every node's pacemaker and corosync logs and the BMCs' logs, copied to ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for node in ("node1", "node2", "node3"):
        for what, path in LOGS.items():
            source = lab.node(node).root / path
            if source.exists():
                shutil.copy(source, target / f"{node}-{what}.log")
    for source in lab.directory.glob("bmc-*.log"):
        shutil.copy(source, target / source.name)


def runtime_totem(lab: Lab, node: str) -> str:
    """The runtime token and consensus timeouts (corosync-cmapctl), as 'token X ms, ...'."""
    result = lab.node_runner(node).run(
        ["corosync-cmapctl", "-g", "runtime.config.totem.token"], timeout=10
    )
    token = result.stdout.strip().rsplit("=", 1)[-1].strip()
    result = lab.node_runner(node).run(
        ["corosync-cmapctl", "-g", "runtime.config.totem.consensus"], timeout=10
    )
    consensus = result.stdout.strip().rsplit("=", 1)[-1].strip()
    return f"runtime token {token} ms, consensus {consensus} ms"


def render(timings: dict[str, float], rounds: list[dict[str, Any]]) -> str:
    lines = ["make lab, once the packages are installed (s):"]
    lines += [f"  {what:<52}{seconds:7.1f}" for what, seconds in timings.items()]
    lines.append("")
    header = f"{'round':<6}{'node':<7}{'failed':>8}{'of':>6}" + "".join(
        f"{title:>13}" for title, _ in COLUMNS
    )
    lines.append(header)
    for number, r in enumerate(rounds, 1):
        lines.append(
            f"{number:<6}{r['holder']:<7}{r['failed']:>8}{r['total']:>6}"
            + "".join(f"{r[key]:>13.1f}" for _, key in COLUMNS)
        )
    if rounds:
        lines.append(
            f"{'median':<13}{statistics.median(r['failed'] for r in rounds):>8.0f}"
            f"{statistics.median(r['total'] for r in rounds):>6.0f}"
            + "".join(f"{statistics.median(r[key] for r in rounds):>13.1f}" for _, key in COLUMNS)
        )
        lines.append("")
        for number, r in enumerate(rounds, 1):
            lines.append(
                f"round {number}: fenced by {r['fencing']}; failed: {r['reasons'] or 'none'}"
            )
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="crashes of the VIP's node")
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print each round's failover lines from the survivors' pacemaker and corosync logs",
    )
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the nodes' logs to DIR at the end")
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
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-stack-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    timings: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    status = 0
    try:
        started = time.monotonic()
        lab.up(nodes=3, subnet=args.subnet, timeout=600, release_name=args.release)
        timings["stackha lab up"] = time.monotonic() - started
        deployment = deploy_stack(lab)
        timings.update(deployment.info["deploy_timings"])
        timings["make lab, all told"] = time.monotonic() - started
        log(runtime_totem(lab, "node1"))
        crashes: list[float] = []
        crash_node = lab.crash

        def crash_and_note(name: str) -> None:  # when the crash happened, for the timeline
            crashes.append(time.time())
            crash_node(name)

        lab.crash = crash_and_note  # type: ignore[method-assign]
        for number in range(1, args.rounds + 1):
            log(f"round {number}: crashing the VIP's node")
            crash = crash_vip_holder(deployment)
            log(str(crash))
            if args.timeline:
                lines = timeline(lab, crashes[-1], crash.holder)
                print(f"round {number}: {crash.holder} crashed at {crashes[-1]:.3f}", flush=True)
                print("\n".join(lines), flush=True)
            rounds.append(
                {
                    "holder": crash.holder,
                    "moved_to": crash.moved_to,
                    "moved_after": crash.moved_after,
                    "total": crash.crash.total,
                    "failed": crash.crash.failed,
                    "recovered_after": crash.crash.recovered_after,
                    "fencing": f"{crash.fencing[0]} through {crash.fencing[1]}",
                    "fenced_after": crash.fenced_after,
                    "serves_after": crash.serves_after,
                    "whole_after": crash.whole_after,
                    "reasons": "; ".join(
                        f"{n}x {p}" for p, n in crash.crash.problems.most_common(4)
                    ),
                }
            )
    except Exception:  # the figures so far are still printed
        log("the run failed:\n" + traceback.format_exc())
        status = 1
    finally:
        if args.keep_logs:
            keep_logs(lab, Path(args.keep_logs))
        log("lab down")
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(timings, rounds), end="")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"timings": timings, "rounds": rounds}, indent=1) + "\n"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
