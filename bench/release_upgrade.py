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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from lab_helpers import inside, online_from, wait_for  # noqa: E402
from openstack_checks import failed_actions, started_on, status_from  # noqa: E402
from stack_checks import deploy_stack, whole  # noqa: E402
from stack_clients import ApiClient  # noqa: E402
from stackha.lab.lab import Lab  # noqa: E402

SUBNET = "192.168.222.0/24"
NODES = ("node1", "node2", "node3")
STOPPED = ("keystone-clone", "nova-api-clone", "rabbitmq-clone", "galera-clone")
KEEP_COLLATIONS = "/etc/mysql/mariadb.conf.d/70-collations-of-10.11.cnf"
KEEP_COLLATIONS_TEXT = (
    "[mariadbd]\ncharacter_set_collations = utf8mb3=utf8mb3_general_ci,utf8mb4=utf8mb4_general_ci\n"
)
DATA_SYNCS = (
    ("keystone", "keystone-manage", "db_sync"),
    ("nova", "nova-manage", "api_db", "sync"),
    ("nova", "nova-manage", "db", "sync"),
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def run(lab: Lab, node: str, *argv: str, timeout: float = 300) -> str:
    result = inside(lab, node, *argv, timeout=timeout)
    if not result.ok:
        raise RuntimeError(f"{node}: {' '.join(argv)}: {result.stdout}{result.stderr}".strip())
    return result.stdout


def versions(lab: Lab, node: str) -> str:
    pacemaker = run(lab, node, "pacemakerd", "--version").split("\n")[0]
    mariadb = run(lab, node, "mariadbd", "--version").split()[2]
    return f"{pacemaker}, mariadbd {mariadb}"


def back_online(lab: Lab, node: str, timeout: float = 180) -> float:
    started = time.monotonic()
    wait_for(lambda: node in online_from(lab, node), f"{node} online", timeout)
    return time.monotonic() - started


def promoted_everywhere(lab: Lab) -> bool:
    status = status_from(lab)
    return status is not None and {
        r.nodes[0] for r in status.instances("galera") if r.role == "Promoted" and r.nodes
    } == set(NODES)


def failures(client: ApiClient, since: float, until: float) -> str:
    seen = [r for r in list(client.requests) if since <= r.started <= until]
    bad = [r for r in seen if not r.ok]
    if not bad:
        return f"0 of {len(seen)} failed"
    return (
        f"{len(bad)} of {len(seen)} failed, {bad[0].started - since:.1f}s to "
        f"{bad[-1].ended - since:.1f}s after the step began"
    )


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
            # 1. the rolling part
            began = time.monotonic()
            lab.reinstall("node3", "trixie")
            say(
                f"node3 reinstalled with trixie ({versions(lab, 'node3')}), back online in "
                f"{back_online(lab, 'node3'):.1f}s"
            )
            wait_for(
                lambda: len([f for f in failed_actions(lab) if "on node3" in f]) >= 2,
                "Galera's and RabbitMQ's refusals on node3",
                180,
            )
            time.sleep(10)  # what else would start on node3 has
            for failure in failed_actions(lab):
                say(f"  failed: {failure}")
            view = status_from(lab)
            assert view is not None
            for clone in ("haproxy", "galera", "rabbitmq", "keystone", "nova-api"):
                say(
                    f"  {clone} runs on {' '.join(sorted(started_on(view, clone))) or '-'}"
                    + ("" if clone != "galera" else " (Started = Unpromoted)")
                )
            say(
                f"  API client during the rolling part: {failures(client, began, time.monotonic())}"
            )

            # 2. the stopped part
            began = time.monotonic()
            run(lab, "node1", "pcs", "resource", "disable", *STOPPED)
            wait_for(
                lambda: (
                    not any(
                        started_on(status_from(lab), c)
                        for c in ("galera", "rabbitmq", "keystone", "nova-api")
                    )
                    and not [
                        r for r in status_from(lab).instances("galera") if r.role == "Promoted"
                    ]
                ),
                "every Galera, RabbitMQ, keystone and nova-api instance stopped",
                300,
            )
            say(f"stopped Galera, RabbitMQ and the APIs: {time.monotonic() - began:.1f}s")
            for node in ("node1", "node2"):
                lab.reinstall(node, "trixie")
                say(f"{node} reinstalled with trixie, back online in {back_online(lab, node):.1f}s")
            stamp = time.strftime("%Y%m%dT%H%M%S")
            for node in NODES:
                run(
                    lab,
                    node,
                    "mv",
                    "/var/lib/rabbitmq/mnesia",
                    f"/var/lib/rabbitmq/mnesia.rabbitmq-3.10.{stamp}",
                )
            for node in NODES:
                # docs/upgrade.md, step 1: 11.8 would give new utf8 tables another collation
                # than 10.11 gave the old ones, and nova's foreign keys between them fail
                lab.node_runner(node).run(
                    ["tee", KEEP_COLLATIONS], stdin=KEEP_COLLATIONS_TEXT, timeout=10, check=True
                )
            run(lab, "node1", "pcs", "resource", "cleanup")
            step = time.monotonic()
            run(lab, "node1", "pcs", "resource", "enable", "galera-clone")
            wait_for(lambda: promoted_everywhere(lab), "Galera Promoted on every node", 300)
            say(
                f"Galera 11.8 Promoted on every node from 10.11's data: "
                f"{time.monotonic() - step:.1f}s"
            )
            for node in NODES:
                step = time.monotonic()
                run(lab, node, "mariadb-upgrade", "--skip-write-binlog", "--silent")
                say(f"  {node}: mariadb-upgrade {time.monotonic() - step:.1f}s")
            for user, *command in DATA_SYNCS:
                step = time.monotonic()
                run(lab, "node1", "runuser", "-u", user, "--", *command, timeout=600)
                say(f"  {' '.join(command)}: {time.monotonic() - step:.1f}s")
            step = time.monotonic()
            run(lab, "node1", "pcs", "resource", "enable", "rabbitmq-clone")
            wait_for(
                lambda: started_on(status_from(lab), "rabbitmq") == set(NODES),
                "RabbitMQ 4.0 on every node",
                300,
            )
            say(f"RabbitMQ 4.0 started on every node (new data): {time.monotonic() - step:.1f}s")
            step = time.monotonic()
            run(lab, "node1", "pcs", "resource", "enable", "keystone-clone", "nova-api-clone")
            wait_for(lambda: whole(deployment), "the whole stack", 300)
            say(f"keystone and nova-api enabled, the stack whole: {time.monotonic() - step:.1f}s")
            client.wait_for_successes(20, "after the upgrade", 120)
            bad = [r for r in list(client.requests) if r.started >= began and not r.ok]
            back = (
                next(
                    r.started for r in list(client.requests) if r.started > bad[-1].started and r.ok
                )
                if bad
                else began
            )
            say(
                "  API client during the stopped part: "
                f"{failures(client, began, time.monotonic())}; answering again "
                f"{back - began:.1f}s after the stop began"
            )
        for failure in failed_actions(lab):
            say(f"  failed at the end: {failure}")
        say(f"total from the first reinstall: see above; node1: {versions(lab, 'node1')}")
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
