"""A loopback HAProxy for running the haproxy agent for real (ocf-tester, in the contract tier
on this machine and in the package tier inside a root filesystem)."""

from __future__ import annotations


def loopback_config(directory: str, port: int) -> str:
    """An HAProxy configuration that answers HTTP itself on 127.0.0.1:``port``, with a stats
    socket under ``directory`` (a path as the agent sees it)."""
    return f"""global
    stats socket {directory}/run/admin.sock mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    http-request return status 200 content-type text/plain string ok
"""


def agent_parameters(directory: str) -> dict[str, str]:
    """The agent's parameters for the configuration written as ``directory``/haproxy.cfg."""
    return {"config": f"{directory}/haproxy.cfg", "pidfile": f"{directory}/haproxy.pid"}
