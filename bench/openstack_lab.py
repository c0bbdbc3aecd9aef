"""Benchmark: what an OpenStack user sees through the VIP when the VIP's node crashes.

keystone and nova-api run as clones (ocf:stackha:keystone, ocf:stackha:nova-api) behind the
ocf:stackha:haproxy clone and an IPaddr2 virtual IP, on Galera, in a 3-node namespace lab —
deployed by tests/openstack_checks.py's deploy (keystone and nova-api on Galera, fencing off). A
client in the lab's network calls the VIP without pause (keystone GET /v3 and nova GET / in
turn, a token POST every fifth request, 3 s timeout each, 50 ms between them) while the node
holding the VIP crashes (``--rounds`` times, each node powered on again and every clone back on
all three nodes before the next round). Per round it reports the failed requests, the seconds
from the crash until every request succeeds again, the seconds until the VIP runs on a survivor,
and the seconds from power-on until the node serves again and until every clone runs on all
three nodes; then the medians.

There is no incumbent to run side by side: no distribution packages an OCF agent for keystone or
nova-api (the archived openstack-resource-agents' are the only ones, for Keystone v2.0). The
figures stand against the client's own request timeout (3 s) and the cluster's reaction time.

Run as root on a checkout after ``make venv`` (the Debian packages from ``make deps``)::

    .venv/bin/python bench/openstack_lab.py --rounds 3

It uses its own lab on 192.168.218.0/24 (``--subnet``) and takes it down whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

# The lab tests' deployment and client are the one place that knows how to set the stack up
# and what to count; the benchmark runs them, not a copy of them (tests/ on PYTHONPATH: see
# bench/README.md).
from openstack_checks import crash_vip_holder, deploy
from stackha.lab.lab import Lab

SUBNET = "192.168.218.0/24"
RECOVERY_LIMIT_S = 90.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def render(deployed: dict[str, float], rounds: list[dict[str, Any]]) -> str:
    lines = ["deployment (s): " + ", ".join(f"{k} {v:.1f}" for k, v in deployed.items()), ""]
    header = (
        f"{'round':<6}{'node':<7}{'failed':>8}{'of':>6}{'recovered s':>13}{'VIP moved s':>13}"
        f"{'serves s':>10}{'all clones s':>14}{'failed after':>14}"
    )
    lines.append(header)
    for number, r in enumerate(rounds, 1):
        lines.append(
            f"{number:<6}{r['holder']:<7}{r['failed']:>8}{r['total']:>6}"
            f"{r['recovered_after']:>13.1f}{r['moved_after']:>13.1f}{r['serves_after']:>10.1f}"
            f"{r['whole_after']:>14.1f}{r['failed_after_power_on']:>14}"
        )
    if rounds:

        def median(key: str) -> float:
            return float(statistics.median(r[key] for r in rounds))

        lines.append(
            f"{'median':<13}{median('failed'):>8.0f}{median('total'):>6.0f}"
            f"{median('recovered_after'):>13.1f}{median('moved_after'):>13.1f}"
            f"{median('serves_after'):>10.1f}{median('whole_after'):>14.1f}"
        )
        lines.append("")
        lines.append("reasons of the failed requests:")
        for number, r in enumerate(rounds, 1):
            lines.append(f"  round {number}: {r['reasons'] or 'none'}")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="crashes of the VIP's node")
    parser.add_argument("--subnet", default=SUBNET)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root: run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    # the lab installs the stackha package (built from this checkout) on its nodes
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-openstack-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    deployed: dict[str, float] = {}
    rounds: list[dict[str, Any]] = []
    status = 0
    try:
        lab.up(nodes=3, subnet=args.subnet, timeout=120)
        log("deploying Galera, keystone, nova-api, haproxy and the VIP")
        deployment = deploy(lab)
        deployed = dict(deployment.seconds)
        for number in range(1, args.rounds + 1):
            log(f"round {number}: crashing the VIP's node")
            crash = crash_vip_holder(deployment, RECOVERY_LIMIT_S)
            log(str(crash))
            rounds.append(
                {
                    "holder": crash.holder,
                    "moved_to": crash.moved_to,
                    "moved_after": crash.moved_after,
                    "total": crash.crash.total,
                    "failed": crash.crash.failed,
                    "recovered_after": crash.crash.recovered_after,
                    "reasons": "; ".join(
                        f"{n}x {p}" for p, n in crash.crash.problems.most_common(4)
                    ),
                    "serves_after": crash.serves_after,
                    "whole_after": crash.whole_after,
                    "failed_after_power_on": crash.back.failed,
                }
            )
    except Exception:  # the figures so far are still printed
        log("the run failed:\n" + traceback.format_exc())
        status = 1
    finally:
        log("lab down")
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print(render(deployed, rounds), end="")
    if args.json:
        data = {"deployment": deployed, "rounds": rounds}
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
