"""RabbitMQ on the lab's nodes: what an operator's provisioning does before Pacemaker takes
over — the same Erlang cookie on every node, a configuration per node, the credentials files
the agent reads — and no broker started. Also what the lab's RabbitMQ is doing (each node's view
through the management API, the brokers' pids) and kill -9 of a broker, for the lab tests and
bench/rabbitmq.py.

Each node's ``/etc/rabbitmq`` and ``/var/lib/rabbitmq`` are its own (bind-mounted from the node's
root, see ``stackha.lab.node``); epmd runs once per node (per network namespace).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.runner import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# The package's configuration, copied from the nodes' system (lab.system()) to each node.
DEFAULT_CONFIG = "/etc/rabbitmq"
SERVER = "/usr/sbin/rabbitmq-server"
USER = "rabbitmq"
PLUGINS = "[rabbitmq_management].\n"
MONITOR_CREDENTIALS = "/etc/rabbitmq/stackha-monitor.credentials"
OPENSTACK_PASSWORD = "/etc/rabbitmq/openstack.password"
OPENSTACK_USER = "openstack"
AMQP_PORT = 5672
MANAGEMENT_PORT = 15672
PID_FILE = "/run/rabbitmq/pid"
NODES = ("node1", "node2", "node3")
# What the lab's clone is created with: a user for OpenStack, a policy for its queues.
USERS = [
    {
        "name": OPENSTACK_USER,
        "password_file": OPENSTACK_PASSWORD,
        "permissions": {"/": [".*", ".*", ".*"]},
    }
]
POLICIES = [
    {
        "name": "openstack-limits",
        "pattern": "^(?!amq\\.).*",
        "definition": {"delivery-limit": 50},
        "apply-to": "queues",
    }
]


def rabbitmq_conf() -> str:
    # Small limits: three brokers share two cores and a few GB here. Management listens on
    # every address of the node (its own namespace): the agent asks it on 127.0.0.1.
    return f"""# written by stackha.lab.rabbitmq
listeners.tcp.default = {AMQP_PORT}
management.tcp.port = {MANAGEMENT_PORT}
vm_memory_high_watermark.absolute = 512MB
disk_free_limit.absolute = 50MB
cluster_partition_handling = pause_minority
net_ticktime = 10
"""


def _secret_file(path: Path, text: str, uid: int = 0, gid: int = 0) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    os.chown(path, uid, gid)
    path.write_text(text)


def provision(lab: Lab) -> dict[str, str]:
    """Configure RabbitMQ on every node. Returns the secrets the nodes share (the Erlang
    cookie, the monitoring user's and OpenStack's passwords) for tests to use."""
    system = lab.system()
    defaults = system / DEFAULT_CONFIG.lstrip("/")
    if not defaults.is_dir() or not (system / SERVER.lstrip("/")).exists():
        raise LabError(f"RabbitMQ is not installed in {system}: apt install rabbitmq-server")
    uid, gid = lab.accounts().ids(USER)
    nodes = lab.load().nodes
    first = lab.node(nodes[0].name).root
    # provisioning again keeps the secrets: the nodes' data was made with them
    shared: dict[str, str] = {}
    for key, relative, size in (
        ("cookie", "var/lib/rabbitmq/.erlang.cookie", 20),
        ("monitor", MONITOR_CREDENTIALS.lstrip("/"), 16),
        ("openstack", OPENSTACK_PASSWORD.lstrip("/"), 16),
    ):
        existing = first / relative
        text = existing.read_text().strip() if existing.exists() else ""
        if key == "monitor" and text:
            fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            text = fields.get("password", "")
        shared[key] = text or secrets.token_hex(size).upper()
    for entry in nodes:
        root = lab.node(entry.name).root
        config = root / "etc/rabbitmq"
        shutil.copytree(defaults, config, dirs_exist_ok=True)
        (config / "rabbitmq.conf").write_text(rabbitmq_conf())
        (config / "enabled_plugins").write_text(PLUGINS)
        _secret_file(
            root / MONITOR_CREDENTIALS.lstrip("/"),
            f"username=stackha-monitor\npassword={shared['monitor']}\n",
        )
        _secret_file(root / OPENSTACK_PASSWORD.lstrip("/"), shared["openstack"] + "\n")
        data = root / "var/lib/rabbitmq"
        (data / "mnesia").mkdir(parents=True, exist_ok=True)
        cookie_file = data / ".erlang.cookie"
        if cookie_file.exists():
            os.chmod(cookie_file, 0o600)
        cookie_file.write_text(shared["cookie"])
        for path in (data, data / "mnesia", cookie_file):
            os.chown(path, uid, gid)
        os.chmod(cookie_file, 0o400)
    return shared


def clone_options() -> list[str]:
    """``pcs resource create rabbitmq ocf:stackha:rabbitmq`` arguments for the lab."""
    return [
        f"users={json.dumps(USERS)}",
        f"policies={json.dumps(POLICIES)}",
        "clone",
        "notify=true",
        "interleave=true",
    ]


# -- what the lab's RabbitMQ is doing, for tests and benchmarks --------------------------------

# Run inside a node: that node's view of the cluster through its management API, as JSON. The
# password comes on stdin.
_VIEW = """
import base64, json, sys, urllib.request
password = sys.stdin.readline().strip()
token = base64.b64encode(("stackha-monitor:" + password).encode()).decode()
request = urllib.request.Request(
    "http://127.0.0.1:15672/api/nodes?columns=name,running,partitions",
    headers={"Authorization": "Basic " + token},
)
try:
    with urllib.request.urlopen(request, timeout=5) as response:
        print(response.read().decode())
except Exception as err:
    print(json.dumps({"error": str(err)}))
"""


def view(lab: Lab, node: str, monitor_password: str) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """{member: (running, partitions)} as ``node`` sees it; {} when it does not answer."""
    try:
        handle = lab.node(node)
        result = handle.runner.run(
            [handle.python, "-I", "-c", _VIEW], stdin=monitor_password + "\n", timeout=20
        )
    except (LabError, CommandError):
        return {}
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return {}
    if not isinstance(data, list):
        return {}
    return {
        str(n["name"]): (bool(n.get("running")), tuple(n.get("partitions") or ()))
        for n in data
        if isinstance(n, dict) and "name" in n
    }


def healthy(lab: Lab, monitor_password: str, nodes: Sequence[str] = NODES) -> bool:
    """Every node's broker answers and sees every member running, with no partition."""
    members = {f"rabbit@{n}" for n in nodes}
    for node in nodes:
        seen = view(lab, node, monitor_password)
        if set(seen) != members or not all(
            running and not parts for running, parts in seen.values()
        ):
            return False
    return True


# Where the broker's pid is: ours (the agent's pid_file default), and resource-agents'
# rabbitmq-cluster's RMQ_PID_FILE (/var/run is /run), for bench/rabbitmq.py.
PID_FILES = (PID_FILE, "/run/rabbitmq/rmq.pid")


def kill_broker(lab: Lab, *nodes: str) -> None:
    """SIGKILL to each node's broker (its Erlang VM) at once (see ``Lab.kill_9``)."""
    lab.kill_9(nodes, PID_FILES, "beam.smp")
