"""ocf:stackha:keystone — the OpenStack Identity API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import KEYSTONE

AGENT = make_agent(
    KEYSTONE,
    shortdesc="OpenStack Identity (keystone) API under uwsgi",
    longdesc=(
        "Runs the keystone public API under uwsgi with the distribution's ini file (or as "
        "keystone-wsgi-public), bound to this node's address so that HAProxy can own port 5000 "
        "on the virtual IP. Start returns once GET /v3 answers with the v3 version document. "
        "Monitor depth 0 checks the uwsgi master and its workers; depth 10 asks GET /v3 on the "
        "node's own address; depth 20 gets a token from this node (POST /v3/auth/tokens, "
        "which reaches the database and the Fernet keys) with credentials read from a file. "
        "Stop is SIGTERM, then SIGKILL of the master and its workers after 10 s. Meant to run "
        "as a clone."
    ),
    example=(
        "pcs resource create keystone ocf:stackha:keystone "
        "credentials=/etc/keystone/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
