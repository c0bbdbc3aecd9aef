"""A real one-member MariaDB Galera cluster on loopback, for the agent outside Pacemaker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent_runs import free_port
from stackha.services.galera import mariadbd_argv


def one_member_galera(directory: Path) -> dict[str, str]:
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


def bootstrap_argv(params: dict[str, str]) -> list[str]:
    """mariadbd for the cluster of :func:`one_member_galera` (its ``params``), bootstrapping a
    new cluster, as the galera agent starts it."""
    return mariadbd_argv(
        "/usr/sbin/mariadbd",
        params["config"],
        params["datadir"],
        params["user"],
        params["pid"],
        params["socket"],
        params["log"],
        "/usr/lib/galera/libgalera_smm.so",
        params["wsrep_cluster_address"],
        new_cluster=True,
    )
