"""For each agent, parameters under which it really runs on this machine, for ocf-tester.

Every file in agents/ needs an entry: the contract suite fails for an agent without one, so a new
agent cannot slip past ocf-tester.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

from agent_runs import free_port


def haproxy(directory: Path) -> dict[str, str]:
    """A loopback HAProxy that answers HTTP itself, with a stats socket."""
    config = directory / "haproxy.cfg"
    config.write_text(
        f"""global
    stats socket {directory}/run/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{free_port()}
    http-request return status 200 content-type text/plain string ok
"""
    )
    return {"config": str(config), "pidfile": str(directory / "haproxy.pid")}


def galera(directory: Path) -> dict[str, str]:
    """A one-member Galera cluster on loopback, its datadir initialised, run as root (the
    test's directory is not reachable for the mysql user)."""
    datadir, run = directory / "data", directory / "run"
    run.mkdir()
    sql, gcomm, ist = free_port(), free_port(), free_port()
    config = directory / "my.cnf"
    config.write_text(
        f"""[mysqld]
bind-address = 127.0.0.1
port = {sql}
innodb_buffer_pool_size = 16M
innodb_log_file_size = 8M
performance_schema = OFF
skip-log-bin
binlog_format = row
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
[galera]
wsrep_cluster_name = contract
wsrep_node_address = 127.0.0.1
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:{gcomm};ist.recv_addr=127.0.0.1:{ist};gcache.size=8M"
wsrep_sst_method = rsync
"""
    )
    subprocess.run(
        [
            "mariadb-install-db",
            f"--defaults-file={config}",
            "--user=root",
            f"--datadir={datadir}",
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {
        "wsrep_cluster_address": f"gcomm://127.0.0.1:{gcomm}",
        "cluster_host_map": f"{os.uname().nodename}:127.0.0.1",
        "config": str(config),
        "datadir": str(datadir),
        "user": "root",
        "socket": str(run / "mysqld.sock"),
        "pid": str(run / "mysqld.pid"),
        "log": str(directory / "error.log"),
    }


SANDBOXES: dict[str, Callable[[Path], dict[str, str]]] = {
    "galera": galera,
    "haproxy": haproxy,
}
