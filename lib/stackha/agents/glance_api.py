"""ocf:stackha:glance-api — the OpenStack Image API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import GLANCE_API

AGENT = make_agent(
    GLANCE_API,
    shortdesc="OpenStack Image (glance-api) API under uwsgi",
    longdesc=(
        "Runs the glance image API under uwsgi with the distribution's ini file (or as its own "
        "glance-api server), bound to this node's address so that HAProxy can own port 9292 on "
        "the virtual IP. Glance reads glance-api.conf and glance-api-paste.ini from the config "
        "file's directory (OS_GLANCE_CONFIG_DIR), so the config file must have that name. Start "
        "returns once GET / answers with a v2 version document. Monitor depth 0 checks the "
        "uwsgi master and its workers; depth 10 asks GET / on the node's own address; depth 20 "
        "gets a token from keystone (the credentials file's auth_url) and lists one image with "
        "it (GET /v2/images?limit=1, which reads glance's database). When keystone gives no "
        "token, or glance answers 503 because keystone could not validate it, depth 20 says so "
        "in the log and judges glance on its version document. The "
        "image store is the operator's to make highly available (a shared file system, Ceph, "
        "Swift): a file store on each node serves only that node's images. Stop is SIGTERM, "
        "then SIGKILL of the master and its workers after 10 s. Meant to run as a clone."
    ),
    example=(
        "pcs resource create glance-api ocf:stackha:glance-api "
        "credentials=/etc/glance/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
