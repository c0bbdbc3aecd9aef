"""MariaDB Galera on the lab's nodes: what an operator's provisioning does before Pacemaker
takes over — the distribution's configuration copied into each node with a Galera section for
it, and a datadir initialised; no mariadbd is started here. Also what the lab's Galera is doing
(roles, wsrep status, health) and kill -9 of a mariadbd, for the lab tests and bench/galera.py.

Each node's ``/etc/mysql`` and ``/var/lib/mysql`` are its own (bind-mounted from the node's root,
see ``stackha.lab.node``), so three mariadbd run side by side on one machine.
"""

from __future__ import annotations

import shutil

from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional

# The package's configuration, copied from the nodes' system (lab.system()) to each node.
DEFAULT_CONFIG = "/etc/mysql"
GALERA_CONF = "mariadb.conf.d/60-galera.cnf"  # Debian ships this file, commented out
PROVIDER = "/usr/lib/galera/libgalera_smm.so"
CLUSTER_NAME = "stackha-lab"


def cluster_address(names: Sequence[str]) -> str:
    return "gcomm://" + ",".join(names)


def galera_conf(node: str, address: str, members: Sequence[str]) -> str:
    # Small buffers: three mariadbd share two cores and a few GB here. The node's own address
    # and 127.0.0.1, not 0.0.0.0: HAProxy binds the database VIP's port 3306 on every node
    # (a wildcard listener on that port would make its bind fail); a list needs MariaDB 10.11.
    return f"""# written by stackha.lab.galera for {node}
[mysqld]
bind-address             = {address},127.0.0.1
innodb_buffer_pool_size  = 32M
innodb_log_file_size     = 16M
performance_schema       = OFF
max_connections          = 200
binlog_format            = row
default_storage_engine   = InnoDB
innodb_autoinc_lock_mode = 2
innodb_flush_log_at_trx_commit = 1

[galera]
wsrep_on                 = ON
wsrep_provider           = {PROVIDER}
wsrep_cluster_name       = {CLUSTER_NAME}
wsrep_cluster_address    = {cluster_address(members)}
wsrep_node_name          = {node}
wsrep_node_address       = {address}
wsrep_provider_options   = "gcache.size=32M"
wsrep_sst_method         = rsync
"""


def provision(lab: Lab) -> str:
    """Configure and initialise MariaDB Galera on every node; returns the cluster address."""
    system = lab.system()
    defaults = system / DEFAULT_CONFIG.lstrip("/")
    if not (system / PROVIDER.lstrip("/")).exists() or not defaults.is_dir():
        raise LabError(
            f"MariaDB Galera is not installed in {system}: apt install mariadb-server galera-4"
        )
    state = lab.load()
    members = [node.name for node in state.nodes]
    for entry in state.nodes:
        node = lab.node(entry.name)
        config = node.root / "etc/mysql"
        if not (config / "my.cnf").exists():
            shutil.copytree(defaults, config, symlinks=True, dirs_exist_ok=True)
        (config / GALERA_CONF).write_text(galera_conf(entry.name, entry.address, members))
        if not (node.root / "var/lib/mysql/mysql").is_dir():
            result = node.runner.run(
                [
                    "/usr/bin/mariadb-install-db",
                    "--user=mysql",
                    "--datadir=/var/lib/mysql",
                    "--skip-test-db",
                    "--auth-root-authentication-method=socket",
                ],
                timeout=120,
            )
            if not result.ok:
                raise LabError(f"{entry.name}: mariadb-install-db: {result.output_line()}")
    return cluster_address(members)


# -- what the lab's Galera is doing, for tests and benchmarks ---------------------------------

NODES = ("node1", "node2", "node3")
MARIADB = "/usr/bin/mariadb"


def wsrep_status(lab: Lab, node: str) -> dict[str, str]:
    """{variable: value} of a node's wsrep status over its socket; {} when it does not answer."""
    try:
        result = lab.node_runner(node).run(
            [
                MARIADB,
                "--batch",
                "--skip-column-names",
                "--execute",
                "SHOW GLOBAL STATUS LIKE 'wsrep%'",
            ],
            timeout=10,
        )
    except (LabError, CommandError):
        return {}
    if not result.ok:
        return {}
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def roles(lab: Lab, nodes: Sequence[str] = NODES) -> Optional[dict[str, tuple[str, bool]]]:
    """{node: (role, failed)} of the galera clone, as the first node that can tell sees it."""
    for observer in nodes:
        try:
            status = lab.node(observer).status()
        except LabError:
            continue
        if status is not None and status.dc:
            return {r.nodes[0]: (r.role, r.failed) for r in status.instances("galera") if r.nodes}
    return None


def healthy(lab: Lab, nodes: Sequence[str] = NODES) -> bool:
    """Every node Promoted (none failed) and, asked over SQL, Synced in one component of all."""
    seen = roles(lab, nodes)
    if not seen or any(seen.get(n) != ("Promoted", False) for n in nodes):
        return False
    for node in nodes:
        status = wsrep_status(lab, node)
        if (
            status.get("wsrep_cluster_status") != "Primary"
            or status.get("wsrep_local_state_comment") != "Synced"
            or status.get("wsrep_cluster_size") != str(len(nodes))
        ):
            return False
    return True


def kill_mariadbd(lab: Lab, *nodes: str) -> None:
    """SIGKILL to each node's mariadbd at once (see ``Lab.kill_9``)."""
    lab.kill_9(nodes, ("/run/mysqld/mysqld.pid",), "mariadbd")
