"""Where an instance of a clone listens on its node: the ``address`` parameter, or the address
this node's host name resolves to. The OpenStack API agents and memcached alike: each instance
binds its own node's address, where HAProxy's servers (the APIs) or the services' server lists
(memcached) name that node, and a wildcard would take the port HAProxy binds on the VIP."""

from __future__ import annotations

from stackha.ocf.status import NotInstalled

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from stackha.ocf.agent import Call


def bind_address(call: Call) -> str:
    """The ``address`` parameter, or this node's own address; NotInstalled when it is not set
    and the host name does not resolve to an address other nodes could reach (this node's
    problem: the clone runs on elsewhere)."""
    if call.config.address:
        return str(call.config.address)
    import socket

    from stackha.services import openstack_api

    try:
        return openstack_api.own_address(socket.gethostname())
    except openstack_api.ConfigError as err:
        raise NotInstalled(f"address not set and {err}") from None
