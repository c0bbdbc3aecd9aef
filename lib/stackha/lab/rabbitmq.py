"""RabbitMQ on the lab's nodes: what an operator's provisioning does before Pacemaker takes
over — the same Erlang cookie on every node, a configuration per node — and nothing more: no
broker is started here.

Each node's ``/etc/rabbitmq`` and ``/var/lib/rabbitmq`` are its own (bind-mounted from the node's
root, see ``stackha.lab.node``); epmd runs once per node (per network namespace).
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError

HOST_CONFIG = Path("/etc/rabbitmq")
USER = "rabbitmq"
PLUGINS = "[rabbitmq_management].\n"


def rabbitmq_conf(address: str) -> str:
    # Small limits: three brokers share two cores and a few GB here.
    return f"""# written by stackha.lab.rabbitmq
listeners.tcp.default = 5672
management.tcp.ip = {address}
management.tcp.port = 15672
vm_memory_high_watermark.absolute = 512MB
disk_free_limit.absolute = 50MB
cluster_partition_handling = pause_minority
net_ticktime = 10
"""


def provision(lab: Lab) -> str:
    """Configure RabbitMQ on every node; returns the Erlang cookie they share."""
    if not HOST_CONFIG.is_dir() or not Path("/usr/sbin/rabbitmq-server").exists():
        raise LabError("RabbitMQ is not installed: apt install rabbitmq-server")
    import pwd

    account = pwd.getpwnam(USER)
    nodes = lab.load().nodes
    first = lab.node(nodes[0].name).root / "var/lib/rabbitmq/.erlang.cookie"
    # provisioning again keeps the cookie: the nodes' data was made with it
    cookie = first.read_text().strip() if first.exists() else secrets.token_hex(20).upper()
    for entry in nodes:
        root = lab.node(entry.name).root
        config = root / "etc/rabbitmq"
        shutil.copytree(HOST_CONFIG, config, dirs_exist_ok=True)
        (config / "rabbitmq.conf").write_text(rabbitmq_conf(entry.address))
        (config / "enabled_plugins").write_text(PLUGINS)
        data = root / "var/lib/rabbitmq"
        (data / "mnesia").mkdir(parents=True, exist_ok=True)
        cookie_file = data / ".erlang.cookie"
        cookie_file.write_text(cookie)
        for path in (data, data / "mnesia", cookie_file):
            os.chown(path, account.pw_uid, account.pw_gid)
        os.chmod(cookie_file, 0o400)
    return cookie
