"""A real one-member MariaDB Galera cluster on loopback, for the agent outside Pacemaker."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent_runs import free_port, stop_child
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


def _is_ready(params: dict[str, str]) -> bool:
    # The socket comes before Galera is: until wsrep_ready, every statement is refused
    # ("WSREP has not yet prepared node for application use").
    if not os.path.exists(params["socket"]):
        return False
    status = subprocess.run(
        [
            "mariadb",
            f"--socket={params['socket']}",
            "-N",
            "-B",
            "-e",
            "SHOW STATUS LIKE 'wsrep_ready'",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return status.stdout.split()[-1:] == ["ON"]


@contextmanager
def running_galera(directory: Path, timeout: float = 120.0) -> Iterator[dict[str, str]]:
    """The cluster of :func:`one_member_galera` in ``directory`` (made here, 0700), bootstrapped
    by hand as root and ready for statements (wsrep_ready ON); yields its parameters and stops
    it by pid afterwards (SIGTERM, SIGKILL after 60 s). RuntimeError with the end of its error
    log when it exits or is not ready in ``timeout`` seconds."""
    directory.mkdir(mode=0o700)
    params = one_member_galera(directory)
    server = subprocess.Popen(
        bootstrap_argv(params), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while not _is_ready(params):
            if server.poll() is not None or time.monotonic() > deadline:
                log = Path(params["log"])
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(
                    f"mariadbd not ready (wsrep_ready ON) in {timeout:.0f} s\n{tail}"
                )
            time.sleep(0.2)
        yield params
    finally:
        stop_child(server, 60)
