"""Measurement: the whole control plane from Debian 12 to Debian 13, as docs/upgrade.md says.

There is no incumbent to run beside it (no tool upgrades this stack across releases in
place); the figures stand against the stack's own deployment. On a 3-node lab of Debian 12
nodes (Pacemaker 2.1.5, MariaDB 10.11, RabbitMQ 3.10.8, Zed) with the whole stack deployed
as ``make lab`` deploys it (fencing on), while a client takes a keystone token and lists nova's
flavors through the VIP without pause (tests/stack_clients.py's ApiClient):

1. **The rolling part.** node3 is reinstalled with Debian 13 (``Lab.reinstall``: the cluster
   stopped on it cleanly, a fresh trixie system, its disks kept). Pacemaker 3.0.0 joins the
   2.1.5 nodes; Galera 11.8 and RabbitMQ 4.0.5 on node3 are refused by the agents, whose exit
   reasons (as crm_mon shows them, 128 characters) are printed; the client's failures are
   counted.
2. **The stopped part** (what MariaDB and RabbitMQ require between these releases): the API
   clones, RabbitMQ and Galera disabled; node1 and node2 reinstalled in turn, each back online
   before the next; every node's RabbitMQ data moved aside (kept); Galera enabled (11.8
   starts on 10.11's datadirs) and ``mariadb-upgrade`` run on each node; the databases of
   keystone and nova migrated (``keystone-manage db_sync``, ``nova-manage api_db sync`` and
   ``db sync``, once); RabbitMQ enabled (a new 4.0 cluster; the agent makes its users again);
   keystone and nova-api enabled. The client's downtime is printed, then the stack is checked
   whole (every clone on every node, Galera Synced, RabbitMQ one cluster, fence devices).

Run as root on a checkout after ``make venv`` (one lab at a time on a 2-core machine)::

    .venv/bin/python bench/release_upgrade.py

It uses its own lab on 192.168.222.0/24 and takes it down whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

from openstack_checks import failed_actions
from stack_checks import deploy_stack
from stack_clients import ApiClient
from stack_upgrade import reinstall_one, upgrade_stopped, versions
from stackha.lab.lab import Lab

SUBNET = "192.168.222.0/24"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subnet", default=SUBNET)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the lab needs root: run as root", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="stackha-bench-upgrade-"))
    lab = Lab(str(workdir / "lab"), progress=log)
    lines: list[str] = []

    def say(line: str) -> None:
        log(line)
        lines.append(line)

    status = 0
    try:
        started = time.monotonic()
        lab.up(nodes=3, subnet=args.subnet, timeout=600, release_name="bookworm")
        deployment = deploy_stack(lab)
        say(f"Debian 12 lab up and the stack deployed: {time.monotonic() - started:.1f}s")
        say(f"node1: {versions(lab, 'node1')}")
        with ApiClient(deployment, 1_000_000, 3600) as client:
            began = time.monotonic()
            rolled = reinstall_one(lab, "node3", "trixie")
            say(
                f"node3 reinstalled with trixie ({versions(lab, 'node3')}), back online in "
                f"{rolled.back_after:.1f}s"
            )
            for failure in rolled.failures:
                say(f"  failed: {failure}")
            for clone, where in rolled.running.items():
                say(f"  {clone} runs on {' '.join(sorted(where)) or '-'}")
            say(f"  API client during the rolling part: {client.outcome(began, time.monotonic())}")
            began = time.monotonic()
            done = upgrade_stopped(lab, deployment, ("node1", "node2"), "trixie")
            for step, seconds in done.seconds.items():
                say(f"  {step}: {seconds:.1f}s")
            client.wait_for_successes(20, "after the upgrade", 120)
            # "every request succeeds from": when the APIs answered again after the stop began
            say(f"  API client during the stopped part: {client.outcome(began)}")
        for failure in failed_actions(lab):
            say(f"  failed at the end: {failure}")
        say(f"node1 at the end: {versions(lab, 'node1')}")
    except Exception:  # the figures so far are still printed
        log("the run failed:\n" + traceback.format_exc())
        status = 1
    finally:
        log("lab down")
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
