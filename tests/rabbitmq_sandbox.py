"""A private RabbitMQ broker on loopback, for the agent outside Pacemaker: its own data, logs,
cookie and ports, its own epmd, all under one directory the rabbitmq user can reach.

Nothing of it listens beyond 127.0.0.1 and nothing touches the host's /var/lib/rabbitmq. On
exit, whatever of it still runs (the broker, the epmd) is stopped by pid and the directory
removed.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from agent_runs import free_port, stop_child

USER = "rabbitmq"


def _stop(pid: int, seconds: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def one_node_rabbitmq(monitor_password: str = ""):
    """Yields (parameters for the agent, the sandbox directory)."""
    account = pwd.getpwnam(USER)
    directory = Path(tempfile.mkdtemp(prefix="stackha-rabbitmq-"))
    directory.chmod(0o755)
    epmd = None
    try:
        home, log, mnesia = directory / "home", directory / "log", directory / "mnesia"
        for path in (home, log, mnesia):
            path.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(10).upper())
        cookie.chmod(0o400)
        amqp, dist, management, epmd_port = free_port(), free_port(), free_port(), free_port()
        (directory / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (directory / "rabbitmq-env.conf").write_text(
            f"""NODE_IP_ADDRESS=127.0.0.1
NODE_PORT={amqp}
DIST_PORT={dist}
ERL_EPMD_PORT={epmd_port}
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {{127,0,0,1}}"
ENABLED_PLUGINS_FILE={directory}/enabled_plugins
"""
        )
        (directory / "rabbitmq.conf").write_text(
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {management}\n"
            "vm_memory_high_watermark.absolute = 256MB\ndisk_free_limit.absolute = 50MB\n"
        )
        credentials = directory / "monitor.credentials"
        credentials.write_text(
            f"username=stackha-monitor\npassword={monitor_password or secrets.token_hex(12)}\n"
        )
        credentials.chmod(0o600)
        for path in (home, log, mnesia, cookie):
            os.chown(path, account.pw_uid, account.pw_gid)
        # Our own epmd on its own port: the Erlang VMs would otherwise start one on the host's
        # 4369 that nobody stops.
        epmd = subprocess.Popen(
            ["/usr/bin/epmd", "-address", "127.0.0.1", "-port", str(epmd_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        parameters = {
            "nodename": f"stackha-{amqp}@localhost",
            "home": str(home),
            "pid_file": str(directory / "run" / "pid"),
            "log_dir": str(log),
            "mnesia_base": str(mnesia),
            "config_file": str(directory / "rabbitmq.conf"),
            "env_file": str(directory / "rabbitmq-env.conf"),
            "monitor_credentials": str(credentials),
            "management_port": str(management),
        }
        yield parameters, directory
    finally:
        try:
            pid = int((directory / "run" / "pid").read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            _stop(pid)
        if epmd is not None:
            stop_child(epmd, 5)
        shutil.rmtree(directory, ignore_errors=True)
