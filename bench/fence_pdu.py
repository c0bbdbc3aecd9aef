"""fence_stackha_pdu against fence_apc on the same lab PDU, in one run.

Brings up a 2-node lab (its PDU speaks the APC AOS v6 command line over telnet), then times
`status` and `reboot` of outlet 2 with both agents, interleaved, options on stdin as
pacemaker-fenced sends them, both over telnet. Reports medians, p90 and the ratios. Each call
runs through ``nsenter`` into the lab's network namespace: the same small cost on both sides.

    .venv/bin/python bench/fence_pdu.py [--runs 10] [--reboot-runs 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from stackha.lab.lab import Lab

OURS = "/usr/sbin/fence_stackha_pdu"
INCUMBENT = "/usr/sbin/fence_apc"


def timed(argv: list[str], stdin: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{argv[-1]} failed ({result.returncode}): {result.stdout}{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    walls = sorted(s[0] for s in samples)
    cpus = sorted(s[1] for s in samples)
    p90 = walls[min(len(walls) - 1, int(0.9 * len(walls)))]
    return {
        "wall_median_s": statistics.median(walls),
        "wall_p90_s": p90,
        "cpu_median_s": statistics.median(cpus),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reboot-runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # the lab installs the stackha package (built from this checkout) on its nodes
    with tempfile.TemporaryDirectory(prefix="stackha-fence-pdu-") as directory:
        lab = Lab(directory + "/lab")
        lab.up(nodes=2, subnet="192.168.221.0/24", timeout=300)
        try:
            pdu = lab.inventory()["pdu"]
            assert isinstance(pdu, dict)
            wrap = lab.switch().runner.wrap
            base = f"ip={pdu['address']}\nusername={pdu['username']}\npassword={pdu['password']}\n"
            results: dict[str, dict[str, list[tuple[float, float]]]] = {
                "status": {"ours": [], "fence_apc": []},
                "reboot": {"ours": [], "fence_apc": []},
            }
            for action, runs in (("status", args.runs), ("reboot", args.reboot_runs)):
                stdin = base + f"plug=2\naction={action}\n"
                for round_number in range(runs + 1):  # the first round warms caches up
                    for name, agent in (("ours", OURS), ("fence_apc", INCUMBENT)):
                        sample = timed(wrap([agent]), stdin)
                        if round_number:
                            results[action][name].append(sample)
                        time.sleep(0.3 if action == "reboot" else 0)
        finally:
            lab.down()
    report = {
        action: {name: summary(samples) for name, samples in by_agent.items()}
        for action, by_agent in results.items()
    }
    print(
        f"fence_stackha_pdu vs fence_apc, lab PDU over telnet, "
        f"{args.runs} status / {args.reboot_runs} reboot calls each"
    )
    print(f"{'action':8} {'agent':18} {'wall median':>12} {'p90':>8} {'cpu median':>11}")
    for action, by_agent in report.items():
        for name, numbers in by_agent.items():
            print(
                f"{action:8} {name:18} {numbers['wall_median_s']:11.3f}s "
                f"{numbers['wall_p90_s']:7.3f}s {numbers['cpu_median_s']:10.3f}s"
            )
        ratio = by_agent["ours"]["wall_median_s"] / by_agent["fence_apc"]["wall_median_s"]
        print(f"{action:8} ratio ours/fence_apc (wall): {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
