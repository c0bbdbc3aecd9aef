"""A lab cluster: nodes, their corosync.conf and authkey, bring-up and tear-down.

For now a cluster lives on loopback, which is enough for one node; the multi-node lab puts nodes
on a private bridge.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from stackha.clock import Deadline
from stackha.lab import corosync_conf
from stackha.lab.node import LabError, Node
from stackha.ocf.daemon import wait_until

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.clock import Clock
    from stackha.runner import Runner


# Properties written into the first CIB, before Pacemaker starts. dc-deadtime: a fresh cluster
# otherwise waits 20 s for a DC that cannot exist yet (most of a 3-node lab's 25 s start-up).
SEED_PROPERTIES = {"dc-deadtime": "2s"}


def seed_cib(empty_cib: str, properties: dict[str, str]) -> str:
    """An empty CIB (from ``cibadmin --empty``) with cluster properties set."""
    root = ET.fromstring(empty_cib)
    crm_config = root.find("configuration/crm_config")
    if crm_config is None:
        raise LabError("cibadmin --empty gave a CIB without crm_config")
    options = ET.SubElement(crm_config, "cluster_property_set", id="cib-bootstrap-options")
    for name, value in properties.items():
        ET.SubElement(options, "nvpair", id=f"cib-bootstrap-options-{name}", name=name, value=value)
    return ET.tostring(root, encoding="unicode")


class Cluster:
    """Nodes named ``node1``…``nodeN`` under ``directory``."""

    def __init__(
        self,
        runner: Runner,
        clock: Clock,
        directory: Path,
        nodes: int = 1,
        name: str = "stackha-lab",
        properties: Optional[dict[str, str]] = None,
    ) -> None:
        if nodes != 1:
            raise LabError("a loopback cluster has exactly one node")
        self.runner = runner
        self.clock = clock
        self.directory = directory
        self.name = name
        self.properties = {**SEED_PROPERTIES, **(properties or {})}
        members = [corosync_conf.Member(f"node{i}", i, "127.0.0.1") for i in range(1, nodes + 1)]
        self.conf = corosync_conf.render(name, members, token_ms=1000)
        hosts = "127.0.0.1 localhost " + " ".join(m.name for m in members) + "\n"
        self.nodes = [Node(runner, clock, m.name, directory / m.name, hosts) for m in members]

    def up(self, timeout: float = 120.0) -> None:
        """Boot every node, start the cluster, and wait until all are online with a DC."""
        deadline = Deadline(self.clock, timeout)
        self.directory.mkdir(parents=True, exist_ok=True)
        key = self.directory / "authkey"
        self.runner.run(["/usr/sbin/corosync-keygen", "-k", str(key)], timeout=30, check=True)
        authkey = key.read_bytes()
        empty = self.runner.run(["/usr/sbin/cibadmin", "--empty"], timeout=30, check=True).stdout
        cib = seed_cib(empty, self.properties)
        for node in self.nodes:
            node.prepare(self.conf, authkey)
            cib_file = node.root / "var/lib/pacemaker/cib/cib.xml"
            cib_file.write_text(cib)
            os.chmod(cib_file, 0o600)
            shutil.chown(cib_file, "hacluster", "haclient")
            node.boot(deadline)
        for node in self.nodes:
            node.start_cluster()
        names = {node.name for node in self.nodes}

        def formed() -> bool:
            status = self.nodes[0].status()
            return (
                status is not None and status.dc is not None and set(status.online_nodes) == names
            )

        wait_until(formed, deadline, f"cluster {self.name} with {len(names)} nodes online", 0.25)

    def down(self, timeout: float = 30.0) -> None:
        deadline = Deadline(self.clock, timeout)
        for node in self.nodes:
            node.destroy(deadline)
