"""ocf:stackha:neutron-server — the OpenStack Networking API, active/active behind HAProxy.

A declaration only: the actions are those of every stackha API agent
(stackha.agents.api_service), the workload knowledge is in stackha.services.openstack_api, the
service's record in stackha.services.api_catalog.
"""

from __future__ import annotations

from stackha.agents.api_service import make_agent
from stackha.services.api_catalog import NEUTRON_SERVER

AGENT = make_agent(
    NEUTRON_SERVER,
    shortdesc="OpenStack Networking (neutron-server) API under uwsgi",
    longdesc=(
        "Runs the neutron networking API under uwsgi with the distribution's ini file (Debian's "
        "neutron-api), or as its own neutron-server, bound to this node's address so that "
        "HAProxy can own port 9696 on the virtual IP. The application reads the config file "
        "and plugins/ml2/ml2_conf.ini beside it (OS_NEUTRON_CONFIG_FILES), as Debian's init "
        "script passes them. Under uwsgi this is the API alone: the RPC server the agents talk "
        "to (Debian's neutron-rpc-server) is a service of its own. Start returns once GET / "
        "answers with the v2.0 version document. Monitor depth 0 checks the uwsgi master and "
        "its workers; depth 10 asks GET / on the node's own address; depth 20 gets a token from "
        "keystone (the credentials file's auth_url) and lists one network with it (GET "
        "/v2.0/networks?limit=1, which reads neutron's database). When keystone gives no "
        "token, or neutron answers 503 because keystone could not validate it, depth 20 says "
        "so in the log and judges neutron on its version document. Stop "
        "is SIGTERM, then SIGKILL of the master and its workers after 10 s. Meant to run as a "
        "clone."
    ),
    example=(
        "pcs resource create neutron-server ocf:stackha:neutron-server "
        "credentials=/etc/neutron/stackha-monitor.credentials "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)
