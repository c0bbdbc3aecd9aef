"""ocf:stackha:cinder-api — the OpenStack Block Storage API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import CINDER_API

AGENT = make_agent(
    CINDER_API,
    shortdesc="OpenStack Block Storage (cinder-api) API under uwsgi",
    longdesc=(
        "Runs the cinder block storage API under uwsgi with the distribution's ini file (or as "
        "its own cinder-api server), bound to this node's address so that HAProxy can own port "
        "8776 on the virtual IP. uwsgi passes the config file to the application as its "
        "arguments (--pyargv), so its path must have no space. Start returns once GET / "
        "answers with a v3 version document. Monitor depth 0 checks the uwsgi master and its "
        "workers; depth 10 asks GET / on the node's own address; depth 20 gets a token from "
        "keystone (the credentials file's auth_url) and lists one volume of the token's "
        "project with it (GET /v3/PROJECT/volumes?limit=1, which reads cinder's database). "
        "When keystone gives no token, or cinder answers 503 because keystone could not "
        "validate it, depth 20 says so in the log and judges cinder on its version document. "
        "Stop is SIGTERM, then SIGKILL of the master and its workers after 10 s. Meant to run "
        "as a clone."
    ),
    example=(
        "pcs resource create cinder-api ocf:stackha:cinder-api "
        "credentials=/etc/cinder/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
