"""ocf:stackha:placement-api — the OpenStack Placement API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import PLACEMENT_API

AGENT = make_agent(
    PLACEMENT_API,
    shortdesc="OpenStack Placement (placement-api) API under uwsgi",
    longdesc=(
        "Runs the placement API under uwsgi with the distribution's ini file (or as its own "
        "placement-api server), bound to this node's address so that HAProxy can own port 8778 "
        "on the virtual IP. Placement reads placement.conf from the config file's directory "
        "(OS_PLACEMENT_CONFIG_DIR), so the config file must have that name. Start returns once "
        "GET / answers with the v1.0 version document. Monitor depth 0 checks the uwsgi master "
        "and its workers; depth 10 asks GET / on the node's own address; depth 20 gets a token "
        "from keystone (the credentials file's auth_url) and asks GET /usages for the token's "
        "project (microversion 1.9: what a reader of the project may read; allocation "
        "candidates need an admin), which reads placement's database. When keystone gives no "
        "token, or placement answers 503 because keystone could not validate it, depth 20 "
        "says so in the log and judges placement on its version document. Stop is SIGTERM, "
        "then SIGKILL of the master and its workers after 10 s. Meant to run as a clone."
    ),
    example=(
        "pcs resource create placement-api ocf:stackha:placement-api "
        "credentials=/etc/placement/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
