"""What the lab tests and the benchmark of the whole stack share: the stack deployed by
``make lab``'s code path (stackha.lab.deploy), what the cluster shows, and a crash of the
node holding the VIP with fencing on: Pacemaker fences it through its BMC, which powers it
back on, and it rejoins every service."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lab_helpers import inside, wait_for
from openstack_checks import Client, Deployment, Outcome, answers_both, settle, status_from
from stackha.lab import deploy as lab_deploy
from stackha.lab import galera as lab_galera
from stackha.lab import rabbitmq as lab_rabbitmq

NODES = ("node1", "node2", "node3")
VIP = "vip-public"


def stackha_command():
    """The stackha command of this interpreter's environment (the nodes see the host's
    files)."""
    beside = Path(sys.executable).parent / "stackha"
    found = str(beside) if beside.exists() else shutil.which("stackha")
    assert found, "no stackha command: pip install -e ."
    return found


def deploy_stack(lab):
    started = time.monotonic()
    info = lab_deploy.deploy(lab, stackha_command())
    info["deploy_seconds"] = time.monotonic() - started
    return Deployment(lab, info)


def vip_holder(lab, observers=NODES):
    status = status_from(lab, observers)
    if status is None:
        return None
    holders = [r.nodes[0] for r in status.instances(VIP) if r.active and r.nodes]
    return holders[0] if len(holders) == 1 else None


def whole(deployment, nodes=NODES):
    """Every clone on every node, Galera Primary and Synced everywhere, RabbitMQ one cluster
    of all, the fence devices started."""
    lab = deployment.lab
    return (
        lab_deploy.clones_started(lab, lab_deploy.CLONES)
        and lab_galera.healthy(lab, nodes)
        and lab_rabbitmq.healthy(lab, deployment.info["rabbitmq_monitor_password"], nodes)
        and lab_deploy.fence_devices_started(lab)
    )


def fencing_of(lab, target, observer):
    """(action, device) of the last successful fencing of ``target`` as ``observer`` knows it,
    or None: from stonith_admin's history and the fencer log of the node that did it."""
    history = inside(lab, observer, "stonith_admin", "--history", target, timeout=30).stdout
    if f"of {target} successful" not in history:
        return None
    delegate = history.split("delegate=")[1].split(",")[0]
    log = inside(lab, delegate, "cat", "/var/log/pacemaker/pacemaker.log", timeout=30).stdout
    found = re.findall(rf"Operation '(\w+)' \[\d+\] targeting {target} using (\S+) returned 0", log)
    return found[-1] if found else ("?", "?")


@dataclass(frozen=True)
class FencedCrash:
    holder: str
    moved_to: str
    moved_after: float  # seconds from the crash until a survivor runs the VIP
    crash: Outcome  # the client's requests from the crash until steady again
    fencing: tuple[str, str]  # (action, device)
    fenced_after: float  # seconds from the crash until the fencing is in the history
    serves_after: float  # ... until the node's own keystone and nova answer again
    whole_after: float  # ... until every service runs on all three nodes again

    def __str__(self):
        return (
            f"{self.holder} (holding the VIP) crashed: VIP on {self.moved_to} after "
            f"{self.moved_after:.1f}s; client: {self.crash}\n"
            f"{self.holder} fenced ({self.fencing[0]} through {self.fencing[1]}) after "
            f"{self.fenced_after:.1f}s; its keystone and nova-api answer after "
            f"{self.serves_after:.1f}s; every service on all three nodes after "
            f"{self.whole_after:.1f}s"
        )


def crash_vip_holder(deployment, recovery_s=120):
    """Crash the node holding the VIP while a client calls the VIP; the cluster fences it (its
    BMC reboots it) and it comes back by itself. Returns a :class:`FencedCrash`."""
    lab = deployment.lab
    settle(lab)
    holder = vip_holder(lab)
    assert holder, "no node holds the VIP"
    survivors = [n for n in NODES if n != holder]
    address = lab.node(holder).address
    with Client(deployment) as client:
        crashed = time.monotonic()
        lab.crash(holder)
        wait_for(
            lambda: vip_holder(lab, survivors) in survivors, "the VIP on a survivor", recovery_s
        )
        moved_after = time.monotonic() - crashed
        moved_to = vip_holder(lab, survivors)
        client.wait_steady("after the crash", timeout=recovery_s + 30)
        crash = client.outcome(crashed)
        wait_for(lambda: fencing_of(lab, holder, moved_to), f"{holder} fenced", 120)
        fenced_after = time.monotonic() - crashed
        fencing = fencing_of(lab, holder, moved_to)
        wait_for(lambda: answers_both(lab, address), f"{holder} serving again", 300)
        serves_after = time.monotonic() - crashed
        wait_for(lambda: whole(deployment), "every service on every node again", 300)
        whole_after = time.monotonic() - crashed
        client.wait_steady("after the return")
    return FencedCrash(
        holder, moved_to, moved_after, crash, fencing, fenced_after, serves_after, whole_after
    )
