"""stackha's OCF resource agents, one module each: its declaration (``AGENT``: parameters,
actions) and its handlers — the OCF glue; what each workload means is in ``stackha.services``.

The executables Pacemaker runs (the source tree's ``agents/``, installed as
``$OCF_ROOT/resource.d/stackha/<name>``) import ``AGENT`` from here and call
``stackha.ocf.agent.main``; the CIB renderer and ``stackha docs`` read the declarations through
:data:`MODULES`. Only the API services' records are imported here (a module of records, no
code): a monitor imports its own agent's module and no other agent's.
"""

from __future__ import annotations

from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from stackha.ocf.agent import Agent

# The OCF type (ocf:stackha:<type>) → the module that declares it: the one list of stackha's
# resource agents (tests/unit/test_seams.py checks agents/ holds one executable for each). An
# API service's module is named after its record (nova-api: stackha.agents.nova_api).
MODULES = {
    "galera": "stackha.agents.galera",
    "haproxy": "stackha.agents.haproxy",
    "memcached": "stackha.agents.memcached",
    "rabbitmq": "stackha.agents.rabbitmq",
    **{
        service.name: f"stackha.agents.{service.name.replace('-', '_')}"
        for service in api_catalog.SERVICES
    },
}


def declaration(name: str) -> Agent:
    """The agent ``ocf:stackha:<name>``, imported on demand; KeyError when stackha has none."""
    import importlib

    agent: Agent = importlib.import_module(MODULES[name]).AGENT
    return agent
