"""The dispatcher's OCF rules, with a small agent defined here and the fake runner."""

import io

from stackha.ocf.agent import Agent, main
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import GenericError, NotInstalled, OcfStatus
from stackha.process import ProcessError

SPEC = AgentSpec(
    name="sample",
    version="1.0",
    shortdesc="s",
    longdesc="l",
    parameters=(
        Parameter("address", "a", "a", required=True),
        Parameter("retries", "r", "r", type="integer", default=3),
        Parameter("password", "p", "p", secret=True),
    ),
    actions=(Action("start", 20), Action("stop", 20), Action("monitor", 20, interval=10)),
)


def run(agent, action, env=None, runner=None):
    out, err = io.StringIO(), io.StringIO()
    environ = {"OCF_RESOURCE_INSTANCE": "s1", **(env or {})}
    code = main(agent, ["sample", action], environ, runner=runner, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def recording_agent(calls, **overrides):
    def handler(name):
        def handle(call):
            calls.append((name, dict(call.config)))
            return overrides.get(name)

        return handle

    return Agent(SPEC, {n: handler(n) for n in ("start", "stop", "monitor")})


def last_line(text):
    return text.strip().splitlines()[-1]


def test_missing_required_parameter_fails_start_with_6_and_a_reason():
    code, _, err = run(recording_agent([]), "start")
    assert code == OcfStatus.ERR_CONFIGURED
    assert last_line(err) == "ocf-exit-reason:parameter address: is required but not set"


def test_missing_required_parameter_fails_validate_all_with_6():
    code, _, err = run(recording_agent([]), "validate-all")
    assert code == 6
    assert "address" in last_line(err)


def test_missing_required_parameter_never_breaks_stop():
    """Stop still runs (with defaults) so a running service can be found and stopped."""
    calls = []
    code, _, _ = run(recording_agent(calls), "stop")
    assert code == 0
    assert calls == [("stop", {"address": None, "retries": 3, "password": None})]


def test_missing_required_parameter_never_breaks_a_probe():
    calls = []
    code, _, _ = run(recording_agent(calls, monitor=OcfStatus.NOT_RUNNING), "monitor")
    assert code == 7


def test_stop_that_cannot_work_unconfigured_reports_stopped():
    """A stop handler that needs the missing value: nothing can be running, so stop succeeds."""

    def stop(call):
        raise NotInstalled("/usr/bin/thing is not installed")

    agent = Agent(SPEC, {"stop": stop, "monitor": stop})
    assert run(agent, "stop")[0] == 0
    assert run(agent, "monitor")[0] == 7
    assert (
        run(agent, "monitor", {"OCF_RESKEY_address": "x", "OCF_RESKEY_CRM_meta_interval": "10000"})[
            0
        ]
        == 5
    )


def test_stop_that_cannot_work_unconfigured_stops_what_its_leftovers_find():
    """Issue 15: stop may not fail for a configuration problem, nor lie. The agent's
    leftovers find what still runs without that parameter and stop it; a probe that finds
    it says it runs (failed), never 7."""
    running = [4321]
    stopped = []

    def broken(call):
        raise NotInstalled("user nosuchuser does not exist")

    def leftovers(call, stop):
        found = list(running)
        if stop:
            stopped.extend(found)
            running.clear()
        return found

    agent = Agent(SPEC, {"stop": broken, "monitor": broken}, leftovers=leftovers)
    code, _, err = run(agent, "monitor")
    assert code == 1
    assert last_line(err) == (
        "ocf-exit-reason:runs here (pid 4321) but user nosuchuser does not exist"
    )
    code, _, err = run(agent, "stop")
    assert code == 0, err
    assert stopped == [4321]
    assert "stopped what still ran (pid 4321)" in err
    assert run(agent, "monitor")[0] == 7
    assert run(agent, "stop")[0] == 0


def test_stop_whose_leftovers_will_not_die_fails_with_both_reasons():
    def broken(call):
        raise NotInstalled("user nosuchuser does not exist")

    def leftovers(call, stop):
        # what stackha.process.stop_all raises when a process outlives SIGKILL
        raise ProcessError("the broker (pid 4321) still running after SIGKILL")

    code, _, err = run(Agent(SPEC, {"stop": broken}, leftovers=leftovers), "stop")
    assert code == 1
    assert last_line(err) == (
        "ocf-exit-reason:stop: user nosuchuser does not exist; "
        "the broker (pid 4321) still running after SIGKILL"
    )


def test_wrong_type_names_parameter_and_value():
    code, _, err = run(
        recording_agent([]), "start", {"OCF_RESKEY_address": "a", "OCF_RESKEY_retries": "lots"}
    )
    assert code == 6
    assert last_line(err) == "ocf-exit-reason:parameter retries: 'lots' is not an integer"


def test_unknown_action_is_3_with_a_reason():
    code, _, err = run(recording_agent([]), "frobnicate")
    assert code == OcfStatus.ERR_UNIMPLEMENTED
    assert last_line(err) == "ocf-exit-reason:action frobnicate is not supported by sample"


def test_meta_data_needs_no_parameters():
    code, out, _ = run(recording_agent([]), "meta-data")
    assert code == 0
    assert out.startswith("<?xml")


def test_handler_error_becomes_its_code_and_one_line_reason():
    def start(call):
        raise GenericError("port 80\nis taken")

    code, _, err = run(Agent(SPEC, {"start": start}), "start", {"OCF_RESKEY_address": "a"})
    assert code == 1
    assert last_line(err) == "ocf-exit-reason:port 80 is taken"


def test_process_control_error_is_error_1_with_its_reason_not_an_internal_error():
    """A ProcessError from stackha.process (no OCF in it) ends as GenericError would."""

    def stop(call):
        raise ProcessError("mariadbd (pid 1234) still running\nafter SIGKILL")

    code, _, err = run(Agent(SPEC, {"stop": stop}), "stop", {"OCF_RESKEY_address": "a"})
    assert code == OcfStatus.ERR_GENERIC
    assert last_line(err) == "ocf-exit-reason:mariadbd (pid 1234) still running after SIGKILL"


def test_a_bug_is_reported_as_error_1_with_its_type_not_a_bare_traceback():
    def start(call):
        return {}["missing"]

    code, _, err = run(Agent(SPEC, {"start": start}), "start", {"OCF_RESKEY_address": "a"})
    assert code == 1
    assert last_line(err) == "ocf-exit-reason:internal error: KeyError: 'missing'"


def test_secrets_are_masked_in_reasons_and_logs():
    def start(call):
        call.log.info(f"connecting with {call.config.password}")
        raise GenericError(f"login refused for password {call.config.password}")

    code, _, err = run(
        Agent(SPEC, {"start": start}),
        "start",
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_password": "hunter2"},
    )
    assert code == 1
    assert "hunter2" not in err
    assert "login refused for password ***" in err
    assert "connecting with ***" in err


def test_logs_go_to_ha_logfile(tmp_path):
    log = tmp_path / "agent.log"

    def start(call):
        call.log.info("hello")

    code, _, err = run(
        Agent(SPEC, {"start": start}), "start", {"OCF_RESKEY_address": "a", "HA_LOGFILE": str(log)}
    )
    assert code == 0
    assert "sample(s1)" in log.read_text() and "INFO: hello" in log.read_text()
    assert "hello" not in err  # info goes to the log file only, not also to stderr


def test_the_action_budget_comes_from_the_op_timeout():
    seen = []

    def start(call):
        seen.append(call.deadline.seconds)

    run(
        Agent(SPEC, {"start": start}),
        "start",
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_CRM_meta_timeout": "45000"},
    )
    assert seen == [45.0]
