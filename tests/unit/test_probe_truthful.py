"""A monitor never says 7 while the instance runs, even when its handler looked only at a pid
file that does not name it (found by the fuzz tier, tests/fuzz/test_stop_truthful.py: every
agent's probe said 7 while its program ran on the instance's own arguments, pid file missing)."""

from __future__ import annotations

import io

from stackha.ocf.agent import Agent, main
from stackha.ocf.spec import Action, AgentSpec
from stackha.ocf.status import NotRunning, OcfStatus

SPEC = AgentSpec(
    name="sample",
    version="1.0",
    shortdesc="s",
    longdesc="l",
    parameters=(),
    actions=(Action("stop", 20), Action("monitor", 20, interval=10)),
)


def run(handler, found, interval="0"):
    agent = Agent(SPEC, {"monitor": handler}, leftovers=lambda call, stop: list(found))
    err = io.StringIO()
    env = {"OCF_RESOURCE_INSTANCE": "s1", "OCF_RESKEY_CRM_meta_interval": interval}
    code = main(agent, ["sample", "monitor"], env, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def not_running(call):
    return OcfStatus.NOT_RUNNING


def raises_not_running(call):
    raise NotRunning("no pid file")


def test_a_probe_that_would_say_7_fails_when_leftovers_find_the_instance():
    """7 from the handler, a process found by its arguments: exit 1 naming its pid."""
    for handler in (not_running, raises_not_running):
        for interval in ("0", "10000"):
            code, err = run(handler, [4242], interval)
            assert code == OcfStatus.ERR_GENERIC
            assert err.strip().splitlines()[-1] == (
                "ocf-exit-reason:runs here (pid 4242) though its pid file does not name it"
            )


def test_a_probe_says_7_when_nothing_of_the_instance_runs():
    assert run(not_running, [])[0] == OcfStatus.NOT_RUNNING
    assert run(raises_not_running, [])[0] == OcfStatus.NOT_RUNNING
