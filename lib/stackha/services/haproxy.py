"""HAProxy as a workload: check a configuration, start in master-worker mode, ask it how it is,
and reload it without dropping connections.

HAProxy runs with ``-W`` (master-worker): the master stays, the pid file names it, and SIGUSR2 to
the master starts new workers that take the listening sockets over from the old ones (``-x
sockpair@``), while the old workers finish the connections they hold. Nothing in here knows OCF.
"""

from __future__ import annotations

import os
import signal

from stackha import http_client
from stackha.clock import Deadline
from stackha.process import is_alive, running_pid
from stackha.record import Record
from stackha.runner import CommandError

# typing and the seams' protocols are for the type checker only (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Optional

    from stackha.process import ProcessTable
    from stackha.runner import Runner


PROCESS_NAME = "haproxy"


class HaproxyError(Exception):
    """HAProxy refused something; the message is HAProxy's own reason."""


class InvalidConfig(HaproxyError):
    """``haproxy -c`` rejects the configuration."""


def alert_reason(output: str) -> str:
    """HAProxy's first ``[ALERT]`` line without its prefix, plus a count of the others.

    ``[ALERT]    (4646) : config : parsing [bad.cfg:2] : unknown keyword 'x' in 'global' section``
    becomes ``config : parsing [bad.cfg:2] : unknown keyword 'x' in 'global' section``.
    """
    alerts = []
    for line in output.splitlines():
        if line.startswith("[ALERT]"):
            alerts.append(line.split(") : ", 1)[-1].strip())
    # The last alerts are summaries ("Fatal errors found ..."); the first one is the cause.
    if not alerts:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        return lines[-1] if lines else "no reason given"
    extra = [
        a for a in alerts[1:] if not a.startswith(("config : Error(s) found", "config : Fatal"))
    ]
    return alerts[0] + (f" (and {len(extra)} more)" if extra else "")


def check_config(runner: Runner, binary: str, config: str, timeout: float) -> None:
    """Raise :class:`InvalidConfig` with HAProxy's reason when ``haproxy -c`` rejects ``config``."""
    result = runner.run([binary, "-c", "-f", config], timeout=timeout)
    if not result.ok:
        raise InvalidConfig(alert_reason(result.stdout + "\n" + result.stderr))


def stats_sockets(config_text: str) -> list[str]:
    """Paths of the UNIX stats sockets declared in the ``global`` section."""
    paths = []
    section = ""
    for raw in config_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not raw[:1].isspace():
            section = line.split()[0]
            continue
        words = line.split()
        if section == "global" and words[:2] == ["stats", "socket"] and len(words) > 2:
            address = words[2]
            if address.startswith("unix@"):
                address = address[len("unix@") :]
            if address.startswith("/"):
                paths.append(address)
    return paths


def prepare_runtime(config_text: str) -> None:
    """Create the directories the stats sockets live in (Debian's unit makes /run/haproxy)."""
    for path in stats_sockets(config_text):
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)


def start(runner: Runner, binary: str, config: str, pidfile: str, timeout: float) -> None:
    """Start HAProxy daemonized in master-worker mode; it has bound its listeners on return."""
    try:
        result = runner.run([binary, "-W", "-D", "-f", config, "-p", pidfile], timeout=timeout)
    except CommandError as err:
        raise HaproxyError(str(err)) from err
    if not result.ok:
        raise HaproxyError(alert_reason(result.stdout + "\n" + result.stderr))


def master_pid(table: ProcessTable, pidfile: str) -> Optional[int]:
    return running_pid(table, pidfile, PROCESS_NAME)


def worker_pids(table: ProcessTable, master: int) -> list[int]:
    return [pid for pid in table.children(master) if is_alive(table, pid)]


class Info(Record):
    """What HAProxy says of itself (``show info``)."""

    __slots__ = ("pid", "stopping", "version")
    pid: int
    stopping: bool
    version: str

    def __init__(self, pid: int, stopping: bool, version: str) -> None:
        self._freeze(locals())


def show_info(path: str, timeout: float) -> Info:
    """Ask the stats socket at ``path``, the whole answer within ``timeout`` seconds; raises
    HaproxyError when it does not answer sensibly."""
    import socket  # only depth-10 monitors pay for it
    import time

    end = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(b"show info\n")
            chunks = []
            while True:
                conn.settimeout(max(end - time.monotonic(), 0.001))
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as err:
        reason = http_client.why_failed(err, timeout)
        raise HaproxyError(f"stats socket {path} does not answer: {reason}") from err
    fields = {}
    for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if fields.get("Name") != "HAProxy" or not fields.get("Pid", "").isdigit():
        raise HaproxyError(f"stats socket {path} gave no HAProxy info")
    return Info(int(fields["Pid"]), fields.get("Stopping") == "1", fields.get("Version", ""))


def http_check(url: str, timeout: float) -> int:
    """GET ``url``; return the status when it is below 400, else raise naming the status."""
    shown = http_client.shown_url(url)
    try:
        # the User-Agent tells the backend's log where the request came from
        answer = http_client.get(url, timeout, {"User-Agent": "stackha-monitor"})
    except http_client.NotAUrl:
        raise HaproxyError(f"health URL {shown} is not an http(s) URL") from None
    except http_client.HttpError as err:
        raise HaproxyError(f"health URL {shown} does not answer: {err.reason}") from None
    if answer.status >= 400:
        raise HaproxyError(f"health URL {shown} answered HTTP {answer.status}")
    return answer.status


def reload(table: ProcessTable, master: int, deadline: Deadline) -> int:
    """Seamless reload: SIGUSR2 to the master, then wait for a new worker. Returns its pid.

    The caller checks the configuration first: a master given a broken configuration keeps its
    old workers, but an operator would not learn why.
    """
    before = set(worker_pids(table, master))
    table.signal(master, signal.SIGUSR2)
    while True:
        if not is_alive(table, master):
            raise HaproxyError(f"HAProxy master (pid {master}) died during reload")
        fresh = [pid for pid in worker_pids(table, master) if pid not in before]
        if fresh:
            return fresh[0]
        if deadline.expired():
            raise HaproxyError(f"no new HAProxy worker within {deadline.seconds:.0f}s of reload")
        deadline.sleep(0.05)


# -- configuration: the database path --------------------------------------------------------

DATABASE_PORT = 3306
# What the global section needs for external checks in HAProxy 2.6: "external-check" allows
# them at all, and since 2.2 HAProxy refuses to fork unless "insecure-fork-wanted" says it may
# ("'option external-check' will likely fail" otherwise). Nor may it chroot: the check program
# and the mariadb client must be where their paths say.
# "localpeer" names this HAProxy in the peers section galera_listen writes, whatever the
# host is called, so that one configuration serves every node.
DATABASE_GLOBAL = ("external-check", "insecure-fork-wanted", "localpeer stackha")
# Where that local peer listens (loopback only): the old worker hands the stick table over
# to the new one there on a reload.
TABLE_PORT = 13306


def galera_listen(
    address: str,
    servers: Sequence[tuple[str, str]],
    check_command: str,
    port: int = DATABASE_PORT,
    name: str = "galera",
    table_port: int = TABLE_PORT,
) -> str:
    """The ``peers`` and ``listen`` sections that send every database connection to the VIP
    ``address`` to ONE Galera node at a time, the way the OpenStack HA Guide, TripleO and Kolla
    do: the first of ``servers`` ((name, address) in the same order on every node) takes them,
    the others are ``backup``; multi-writer Galera gives OpenStack deadlock errors when two
    nodes certify conflicting ``SELECT ... FOR UPDATE`` transactions.

    - the health check is ``check_command`` (stackha-galera-check: wsrep ready, Primary
      Component, Synced) every 2 s, down after 2 failures, up after 2 successes;
    - ``on-marked-down shutdown-sessions``: the connections to a node marked down are closed
      at once, not left to hang on a node that no longer takes writes;
    - ``stick on dst``: every connection to the VIP sticks to the node chosen first, so a
      node coming back does not take new connections while the old ones still write to its
      backup (two writers again); it takes them when the one in use fails, or when the VIP
      moves to another node's HAProxy (whose table starts empty, and whose old connections
      died with the VIP). TripleO does the same;
    - a table far larger than its one key (the VIP): each connection's store holds a new entry
      from its stick rule until its connect, and an allocation into a full table evicts the
      oldest entry, the one that names the writer. With ``size 1``, of two connections that
      arrive together the second found no entry and went to the first server: two writers
      (a Debian 13 lab, keystone's and nova-api's workers opening their pools at once;
      reproduced with HAProxy 2.6 and 3.0). Entries are allocated as used, not in advance;
    - ``observe layer4 error-limit 1 on-error mark-down`` and ``retries 0``: one failed connect
      to the writer marks it down at once, which closes its sessions before the next
      connection picks another writer. Without it, HAProxy deletes the stick entry on a failed
      connect and the next connection goes to the first server while the pooled ones stay on
      the old writer: two writers (seen in a Debian 13 lab, reproduced with HAProxy 2.6 and
      3.0). No retries: HAProxy 3.0 left a client whose connect was retried after the mark-down
      hanging; a client refused at once reconnects, to the next writer;
    - the table in a ``peers`` section whose only peer is this HAProxy (``localpeer stackha``
      in DATABASE_GLOBAL, listening on 127.0.0.1:``table_port``): a reload hands the table
      from the old worker, which keeps its sessions, to the new one, whose table would
      otherwise start empty and pick the first server;
    - long client and server timeouts with TCP keep-alives: oslo.db keeps pooled connections
      open for an hour (its ``connection_recycle_time``).
    """
    lines = [
        f"peers {name}_writer",
        f"    peer stackha 127.0.0.1:{table_port}",
        "",
        f"listen {name}",
        f"    bind {address}:{port}",
        "    mode tcp",
        "    option tcplog",  # a defaults section's httplog does not apply to TCP
        "    option tcpka",
        "    timeout client 90m",
        "    timeout server 90m",
        "    timeout check 2s",
        "    option external-check",
        f"    external-check command {check_command}",
        f"    stick-table type ip size 1m peers {name}_writer",
        "    stick on dst",
        "    retries 0",
        "    default-server check inter 2s fall 2 rise 2 on-marked-down shutdown-sessions"
        " observe layer4 error-limit 1 on-error mark-down",
    ]
    for index, (server, server_address) in enumerate(servers):
        backup = " backup" if index else ""
        lines.append(f"    server {server} {server_address}:{port}{backup}")
    return "\n".join(lines) + "\n"
