"""ocf:stackha:nova-api — the OpenStack Compute API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import NOVA_API

AGENT = make_agent(
    NOVA_API,
    shortdesc="OpenStack Compute (nova-api) API under uwsgi",
    longdesc=(
        "Runs the nova compute API under uwsgi with the distribution's ini file (or as its own "
        "nova-api server), bound to this node's address so that HAProxy can own port 8774 on "
        "the virtual IP. Start returns once GET / answers with the v2.1 version document. "
        "Monitor depth 0 checks the uwsgi master and its workers; depth 10 asks GET / on the "
        "node's own address; depth 20 gets a token from keystone (the credentials file's "
        "auth_url) and asks GET /v2.1/flavors with it (GET / and /v2.1/ answer without a "
        "token). When keystone gives no token, or nova-api answers 503 because keystone could "
        "not validate it, depth 20 says so in the log and judges nova-api on its version "
        "document: restarting nova-api would not bring keystone back. Stop is SIGTERM, then "
        "SIGKILL of the master and its workers after 10 s. Meant to run as a clone."
    ),
    example=(
        "pcs resource create nova-api ocf:stackha:nova-api "
        "credentials=/etc/nova/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
