"""stackha.ocf.budget: how long a monitor's checks may wait, on the fake clock."""

from __future__ import annotations

import io

import pytest
from stackha.clock import Deadline
from stackha.ocf.agent import Agent, main
from stackha.ocf.budget import CheckBudget, reserve_s
from stackha.ocf.log import AgentLog
from stackha.ocf.spec import Action, AgentSpec


def log_to(stream):
    return AgentLog("test(r)", stderr=stream, debug=True)


@pytest.mark.parametrize(
    ("timeout", "reserve"), [(60, 5.0), (30, 3.0), (20, 2.0), (120, 5.0), (3, 1.5)]
)
def test_the_reserve_is_a_tenth_of_the_timeout_within_2_and_5_s_and_at_most_half(timeout, reserve):
    assert reserve_s(timeout) == reserve


def test_a_slow_answer_is_a_warning_naming_the_request_its_wait_and_the_budget(fake_clock):
    out = io.StringIO()
    budget = CheckBudget(Deadline(fake_clock, 55), log_to(out), slow_after_s=5)

    def slow(timeout):
        assert timeout == 55
        fake_clock.sleep(7.9)
        return "answer"

    assert budget.timed("GET /v2.1/flavors", slow) == "answer"
    assert out.getvalue() == (
        "WARNING: GET /v2.1/flavors answered after 7.9 s, slower than 5 s (budget 55 s): "
        "slow, not failed\n"
    )


def test_a_quick_answer_is_a_debug_line(fake_clock):
    out = io.StringIO()
    budget = CheckBudget(Deadline(fake_clock, 55), log_to(out), slow_after_s=5)
    budget.timed("GET /", lambda timeout: fake_clock.sleep(0.2))
    assert out.getvalue() == "DEBUG: GET / answered after 0.2 s (budget 55 s)\n"


def test_sequential_requests_share_the_budget(fake_clock):
    """A token that took 30 s leaves the request made with it 25 s, not a new 55 s."""
    budget = CheckBudget(Deadline(fake_clock, 55), log_to(io.StringIO()))
    given = []

    def request(seconds):
        def wait(timeout):
            given.append(timeout)
            fake_clock.sleep(seconds)

        return wait

    budget.timed("POST /v3/auth/tokens", request(30))
    budget.timed("GET /v2.1/flavors", request(1))
    assert given == [55, 25]


def test_a_request_after_the_budget_is_spent_is_still_asked_briefly(fake_clock):
    budget = CheckBudget(Deadline(fake_clock, 10), log_to(io.StringIO()))
    fake_clock.sleep(12)
    assert budget.timed("GET /", lambda timeout: timeout) == 0.5


def test_a_failure_goes_through_unchanged_and_a_slow_one_is_logged(fake_clock):
    out = io.StringIO()
    budget = CheckBudget(Deadline(fake_clock, 20), log_to(out), slow_after_s=5)

    def hung(timeout):
        fake_clock.sleep(timeout)
        raise OSError(f"no answer within {timeout:.1f} s")

    with pytest.raises(OSError, match="^no answer within 20.0 s$"):
        budget.timed("'show info' on /run/haproxy/admin.sock", hung)
    assert out.getvalue() == (
        "INFO: 'show info' on /run/haproxy/admin.sock: no good answer after 20.0 s (budget 20 s)\n"
    )


def run_checks(fake_clock, timeout_ms, *waits, leave_s=0.0):
    """One monitor call of an agent whose handler makes a check per ``waits`` (seconds each),
    each through its own Call.check_budget(); returns the timeout each was given."""
    given = []

    def monitor(call):
        for seconds in waits:
            budget = call.check_budget(leave_s=leave_s)

            def wait(timeout, seconds=seconds):
                given.append(timeout)
                fake_clock.sleep(seconds)

            budget.timed("check", wait)
        return 0

    spec = AgentSpec("t", "1", "t", "t", (), (Action("monitor", timeout=20),))
    env = {"OCF_RESKEY_CRM_meta_timeout": str(timeout_ms), "OCF_RESKEY_CRM_meta_interval": "1"}
    err = io.StringIO()
    code = main(
        Agent(spec, {"monitor": monitor}),
        ["t", "monitor"],
        env,
        clock=fake_clock,
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 0, err.getvalue()
    return given


def test_a_call_gives_its_checks_the_operation_timeout_less_the_reserve(fake_clock):
    assert run_checks(fake_clock, 60000, 1) == [55]


def test_every_budget_of_one_call_ends_at_the_same_moment(fake_clock):
    """Two checks through two budgets of one call still share one: 55, then 55 - 20."""
    assert run_checks(fake_clock, 60000, 20, 1) == [55, 35]


def test_time_left_for_work_after_the_checks_comes_off_the_budget(fake_clock):
    """rabbitmq keeps 10 s for its fallback check after the management API."""
    assert run_checks(fake_clock, 30000, 1, leave_s=10) == [17]
