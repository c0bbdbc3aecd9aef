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
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from stack_checks import crash_vip_holder, deploy_stack  # noqa: E402
from stackha.lab.lab import Lab  # noqa: E402

SUBNET = "192.168.219.0/24"
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
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root: run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    subprocess.run(
        [str(Path(sys.executable).parent / "stackha"), "install"], check=True, capture_output=True
    )
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-stack-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    timings: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    status = 0
    try:
        started = time.monotonic()
        lab.up(nodes=3, subnet=args.subnet, timeout=120)
        timings["stackha lab up"] = time.monotonic() - started
        deployment = deploy_stack(lab)
        timings.update(deployment.info["deploy_timings"])
        timings["make lab, all told"] = time.monotonic() - started
        for number in range(1, args.rounds + 1):
            log(f"round {number}: crashing the VIP's node")
            crash = crash_vip_holder(deployment)
            log(str(crash))
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
