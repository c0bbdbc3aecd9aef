"""The whole control plane from one Debian release to the next, as docs/upgrade.md says an
operator does it: the rolling part the releases allow (a node reinstalled while the others
serve), then the stopped part MariaDB and RabbitMQ require between Debian 12 and 13 (Galera,
RabbitMQ and the APIs disabled, the other nodes reinstalled, RabbitMQ's data set aside, 10.11's
collations kept, Galera on the old data, mariadb-upgrade, the OpenStack databases migrated,
RabbitMQ and the APIs enabled). One home for tests/lab/test_release_lab.py, which asserts on
it, and bench/release_upgrade.py, which prints its figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from lab_helpers import inside, online_from, pcs, settle, wait_for
from openstack_checks import failed_actions, started_on, status_from
from stack_checks import NODES, whole

# docs/upgrade.md, step 1: MariaDB 11.8 gives a new utf8 table utf8mb3_uca1400_ai_ci where
# 10.11 gave the old ones utf8mb3_general_ci, and a foreign key between the two (nova's
# share_mapping to instances) is refused: nova-manage db sync fails without this file.
KEEP_COLLATIONS = "/etc/mysql/mariadb.conf.d/70-collations-of-10.11.cnf"
KEEP_COLLATIONS_TEXT = (
    "[mariadbd]\ncharacter_set_collations = utf8mb3=utf8mb3_general_ci,utf8mb4=utf8mb4_general_ci\n"
)
STOPPED = ("keystone-clone", "nova-api-clone", "rabbitmq-clone", "galera-clone")
DATA_SYNCS = (
    ("keystone", "keystone-manage", "db_sync"),
    ("nova", "nova-manage", "api_db", "sync"),
    ("nova", "nova-manage", "db", "sync"),
)
SERVICES = ("galera", "rabbitmq", "keystone", "nova-api")


def run(lab, node, *argv, timeout=300):
    result = inside(lab, node, *argv, timeout=timeout)
    assert result.ok, f"{node}: {' '.join(argv)}: {result.stdout}{result.stderr}"
    return result.stdout


def versions(lab, node):
    """'Pacemaker X, mariadbd Y' of a node."""
    pacemaker = run(lab, node, "pacemakerd", "--version").splitlines()[0]
    mariadb = run(lab, node, "mariadbd", "--version").split()[2]
    return f"{pacemaker}, mariadbd {mariadb}"


def back_online(lab, node, timeout=180):
    """Seconds until ``node`` is online as it sees the cluster."""
    started = time.monotonic()
    wait_for(lambda: node in online_from(lab, node), f"{node} online", timeout)
    return time.monotonic() - started


@dataclass
class RollingStep:
    node: str
    back_after: float
    failures: list[str]  # crm_mon's failed actions on the node ("op on node: reason")
    running: dict[str, set[str]]  # clone → nodes where it is Started (Promoted for galera)


def reinstall_one(lab, node, release_name, refusals=("galera", "rabbitmq")):
    """The rolling part: ``node`` reinstalled with ``release_name`` while the others serve;
    returns once it is back and the clones named in ``refusals`` failed on it (each agent
    refused it), with what crm_mon shows. Failures recorded before are cleaned up first (an
    operator's ``pcs resource cleanup``), so that only the refusals are found."""
    pcs(lab, "resource", "cleanup")
    wait_for(lambda: not failed_actions(lab), "no failed action before the reinstall", 60)
    lab.reinstall(node, release_name)
    back = back_online(lab, node)

    def refused():
        found = [f for f in failed_actions(lab) if f" on {node}:" in f]
        return found if all(any(f.startswith(f"{r}_") for f in found) for r in refusals) else None

    failures = wait_for(refused, f"{', '.join(refusals)} refused on {node}", 180)
    # Each refused clone fails on the node until migration-threshold bans it there; until
    # then crm_mon may show "FAILED Promoted" between a failed promote and its recovery.
    settle(lab, timeout=300)
    view = status_from(lab)
    assert view is not None
    running = {clone: started_on(view, clone) for clone in ("haproxy", *SERVICES)}
    running["galera"] = promoted_on(view)
    return RollingStep(node, back, failures, running)


@dataclass
class StoppedUpgrade:
    seconds: dict[str, float] = field(default_factory=dict)  # step → seconds, in order


def promoted_on(view):
    """The nodes where Galera is Promoted, and not failed, in the cluster ``view``."""
    return {
        r.nodes[0]
        for r in view.instances("galera")
        if r.role == "Promoted" and not r.failed and r.nodes
    }


def promoted_everywhere(lab, nodes=NODES):
    view = status_from(lab)
    return view is not None and promoted_on(view) == set(nodes)


def services_stopped(lab):
    view = status_from(lab)
    return view is not None and not any(
        r.nodes for s in SERVICES for r in view.instances(s) if r.active
    )


def upgrade_stopped(lab, deployment, nodes, release_name):
    """The stopped part: Galera, RabbitMQ and the APIs disabled, each of ``nodes`` reinstalled
    with ``release_name`` in turn (back online before the next), then the services brought up
    on the new release's data as docs/upgrade.md says; returns when the stack is whole."""
    done = StoppedUpgrade()

    def step(name, work):
        started = time.monotonic()
        work()
        done.seconds[name] = time.monotonic() - started

    def stop():
        pcs(lab, "resource", "disable", *STOPPED)
        wait_for(lambda: services_stopped(lab), "Galera, RabbitMQ and the APIs stopped", 300)

    step("Galera, RabbitMQ and the APIs stopped", stop)
    for node in nodes:
        step(
            f"{node} reinstalled, back online",
            lambda n=node: (lab.reinstall(n, release_name), back_online(lab, n)),
        )
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for node in NODES:
        # 4.0 cannot boot 3.10's data: kept beside, never deleted
        run(lab, node, "mv", "/var/lib/rabbitmq/mnesia", f"/var/lib/rabbitmq/mnesia.{stamp}")
        lab.node_runner(node).run(
            ["tee", KEEP_COLLATIONS], stdin=KEEP_COLLATIONS_TEXT, timeout=10, check=True
        )
    pcs(lab, "resource", "cleanup")

    def galera():
        pcs(lab, "resource", "enable", "galera-clone")
        wait_for(lambda: promoted_everywhere(lab), "Galera Promoted on every node", 300)

    step("Galera Promoted on every node from the old data", galera)
    for node in NODES:
        step(
            f"mariadb-upgrade on {node}",
            lambda n=node: run(lab, n, "mariadb-upgrade", "--skip-write-binlog", "--silent"),
        )
    for user, *command in DATA_SYNCS:
        step(
            " ".join(command),
            lambda u=user, c=command: run(lab, "node1", "runuser", "-u", u, "--", *c, timeout=600),
        )

    def rabbitmq():
        pcs(lab, "resource", "enable", "rabbitmq-clone")
        wait_for(
            lambda: started_on(status_from(lab), "rabbitmq") == set(NODES),
            "RabbitMQ on every node",
            300,
        )

    step("RabbitMQ started on every node (new data)", rabbitmq)

    def apis():
        pcs(lab, "resource", "enable", "keystone-clone", "nova-api-clone")
        wait_for(lambda: whole(deployment), "the whole stack", 300)

    step("keystone and nova-api enabled, the stack whole", apis)
    return done
