"""stackha's fence agents, one module each: its declaration (``AGENT``: options, actions) and
how it makes its device from them; the devices are ``stackha.fencing.ipmi`` and
``stackha.fencing.pdu``, the power state machine ``stackha.fencing.agent``.

The executables pacemaker-fenced runs (the source tree's ``fence/``, installed as
``/usr/sbin/<name>``) import ``AGENT`` from here and call ``stackha.fencing.agent.main``.
Nothing is imported here: one agent's call imports its own device library and no other.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from stackha.fencing.agent import FenceAgent

# The fence agent's name (what pcs stonith create takes) → the module that declares it
# (tests/unit/test_seams.py checks fence/ holds one executable for each).
MODULES = {
    "fence_stackha_ipmi": "stackha.fencing.agents.ipmi",
    "fence_stackha_pdu": "stackha.fencing.agents.pdu",
}


def declaration(name: str) -> FenceAgent:
    """The fence agent ``name``, imported on demand; KeyError when stackha has none."""
    import importlib

    agent: FenceAgent = importlib.import_module(MODULES[name]).AGENT
    return agent
