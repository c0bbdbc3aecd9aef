"""The fencing library: options from stdin and argv, the power state machine, meta-data."""

from __future__ import annotations

import io

import pytest
from fake_devices import (
    FakePowerDevice,
    HangingDevice,
    RefusingThenListening,
    WrongPasswordDevice,
)
from lxml import etree
from stackha.fencing import spec as options
from stackha.fencing.agent import FenceAgent, FenceError, main
from stackha.fencing.metadata import render_metadata
from stackha.fencing.options import OptionsError, parse, read_argv, read_stdin_lines
from stackha.fencing.spec import FenceAgentSpec, FenceOption

SPEC = FenceAgentSpec(
    name="fence_test",
    shortdesc="Test <agent> & friends",
    longdesc="For the tests.",
    vendor_url="",
    options=(
        options.IP,
        options.USERNAME,
        options.PASSWORD,
        options.PASSWORD_SCRIPT,
        options.PLUG,
        FenceOption("lanplus", "IPMI 2.0", type="boolean", default=True, short="-P"),
        FenceOption(
            "privlvl",
            "Privilege",
            type="select",
            default="administrator",
            choices=("user", "operator", "administrator"),
        ),
        *options.COMMON,
    ),
    actions=(
        "on",
        "off",
        "reboot",
        "status",
        "monitor",
        "list",
        "list-status",
        "metadata",
        "manpage",
        "validate-all",
    ),
)


def test_stdin_lines_as_pacemaker_fenced_sends_them():
    """key=value lines in any order; legacy names; quotes stripped; comments skipped."""
    pairs = read_stdin_lines(
        [
            "# comment",
            "",
            "ipaddr=10.0.0.1",
            'login="admin"',
            "passwd=secret",
            "action=off",
            "port=node1",
            "nodename=node1",
        ]
    )
    parsed = parse(SPEC, pairs)
    assert parsed.config.ip == "10.0.0.1"
    assert parsed.config.username == "admin"
    assert parsed.config.password == "secret"
    assert parsed.config.plug == "node1"
    assert parsed.extra == {"nodename": "node1"}
    assert parsed.warnings == ()


def test_booleans_are_read_by_value():
    """fence-agents reads lanplus=false from stdin as *true* (it tests presence); we do not."""
    base = [("ip", "a"), ("username", "u"), ("password", "p")]
    assert parse(SPEC, base + [("lanplus", "false")]).config.lanplus is False
    assert parse(SPEC, base + [("lanplus", "0")]).config.lanplus is False
    assert parse(SPEC, base + [("lanplus", "yes")]).config.lanplus is True
    with pytest.raises(OptionsError, match="option lanplus: 'maybe' is not a boolean"):
        parse(SPEC, base + [("lanplus", "maybe")])


def test_command_line_long_short_and_flags():
    pairs = read_argv(
        SPEC,
        [
            "--ip",
            "10.0.0.1",
            "-l",
            "admin",
            "--password=pw",
            "-P",
            "--power-timeout=30",
            "-o",
            "status",
        ],
    )
    parsed = parse(SPEC, pairs)
    assert parsed.config.lanplus is True
    assert parsed.config.power_timeout == 30.0
    assert parsed.config.action == "status"


def test_every_problem_is_named_at_once_and_secrets_are_not_echoed():
    with pytest.raises(OptionsError) as error:
        parse(SPEC, [("privlvl", "god"), ("power_timeout", "soon")])
    message = str(error.value)
    assert "option privlvl: 'god' is not one of user, operator, administrator" in message
    assert "option power_timeout: 'soon' is not a number of seconds" in message
    assert "option ip is required but not set" in message
    assert "a password (password or password_script) is required" in message


def test_unknown_options_warn_but_pcmk_options_are_quiet():
    parsed = parse(
        SPEC,
        [
            ("ip", "a"),
            ("username", "u"),
            ("password", "p"),
            ("cipher", "3"),
            ("pcmk_host_list", "node1"),
        ],
    )
    assert parsed.warnings == ("ignoring unknown option cipher",)
    assert parsed.extra == {"pcmk_host_list": "node1"}


def test_password_script_runs_without_a_shell(fake_runner):
    fake_runner.expect(["/usr/local/bin/bmc-pass", "node 1"], stdout="s3cret\nignored\n")
    parsed = parse(
        SPEC,
        [("ip", "a"), ("username", "u"), ("password_script", "/usr/local/bin/bmc-pass 'node 1'")],
        fake_runner,
    )
    assert parsed.config.password == "s3cret"
    assert parsed.config.secret_values == ("s3cret",)


def agent_with(device):
    return FenceAgent(SPEC, lambda config, deadline: device)


def run(device, clock, stdin_text):
    out, err = io.StringIO(), io.StringIO()
    code = main(
        agent_with(device),
        ["fence_test"],
        io.StringIO(stdin_text),
        clock=clock,
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue(), err.getvalue()


BASE = "ip=bmc\nusername=admin\npassword=hunter2\n"


def test_off_waits_until_the_device_confirms(fake_clock):
    device = FakePowerDevice(fake_clock, state="on", lag=3.0)
    code, out, err = run(device, fake_clock, BASE + "action=off\n")
    assert (code, out, err) == (0, "Success: Powered OFF\n", "")
    assert device.state[None] == "off"
    assert ("logout",) in device.calls


def test_off_that_the_device_never_confirms_fails_at_power_timeout(fake_clock):
    device = FakePowerDevice(fake_clock, state="on", refuse={"off"})
    start = fake_clock.now
    code, out, err = run(device, fake_clock, BASE + "action=off\npower_timeout=7\n")
    assert code == 1
    assert err == "ERROR: timed out after 7s waiting for power OFF\n"
    assert 7 <= fake_clock.now - start <= 7.5


def test_already_off(fake_clock):
    device = FakePowerDevice(fake_clock, state="off")
    assert run(device, fake_clock, BASE + "action=off\n")[:2] == (0, "Success: Already OFF\n")
    assert not [c for c in device.calls if c[0] == "set"]


def test_reboot_is_a_verified_off_then_on(fake_clock):
    device = FakePowerDevice(fake_clock, state="on", lag=1.0)
    code, out, _ = run(device, fake_clock, BASE + "action=reboot\n")
    assert (code, out) == (0, "Success: Rebooted\n")
    sets = [c for c in device.calls if c[0] == "set"]
    assert sets == [("set", None, "off"), ("set", None, "on")]
    first_on = device.calls.index(("set", None, "on"))
    assert ("get", None) in device.calls[device.calls.index(("set", None, "off")) : first_on]


def test_reboot_that_cannot_power_on_still_fences_and_says_so(fake_clock):
    """The node is off: that is the fencing. Reporting failure would make Pacemaker retry."""
    device = FakePowerDevice(fake_clock, state="on", refuse={"on"})
    code, out, err = run(device, fake_clock, BASE + "action=reboot\npower_timeout=2\n")
    assert (code, out) == (0, "Success: Rebooted\n")
    assert "WARNING: powered off, but not back on" in err


def sets_of(device):
    return [c[2] for c in device.calls if c[0] == "set"]


def test_a_busy_power_on_is_asked_again_until_it_is_done(fake_clock):
    """Node Busy (IPMI 0xC0) three times: the reboot keeps asking and the node ends up on."""
    device = FakePowerDevice(fake_clock, state="on", lag=1.0, busy={"on": 3})
    code, out, err = run(device, fake_clock, BASE + "action=reboot\n")
    assert (code, out) == (0, "Success: Rebooted\n")
    assert device.state[None] == "on"
    assert sets_of(device) == ["off", "on", "on", "on", "on"]
    # one line for the three busy answers, none saying the node stayed off
    assert err == "WARNING: power on: BMC bmc: Node Busy; asking again\n"


def test_a_power_on_busy_until_power_timeout_leaves_the_node_fenced_and_says_so(fake_clock):
    """Busy for ever: asked until power_timeout, then the old outcome — off is fenced, exit 0."""
    device = FakePowerDevice(fake_clock, state="on", busy={"on": 1000})
    code, out, err = run(device, fake_clock, BASE + "action=reboot\npower_timeout=5\n")
    assert (code, out) == (0, "Success: Rebooted\n")
    assert device.state[None] == "off"
    assert err.splitlines()[-1].startswith(
        "WARNING: powered off, but not back on: BMC bmc: Node Busy (asked "
    )
    assert err.splitlines()[-1].endswith(" times in 5s)")
    # every wait on the step's deadline: 5 s of pauses, nothing beyond
    assert sum(fake_clock.sleeps) == pytest.approx(5.0)
    assert 5 <= len(sets_of(device)) - 1 <= 7


def test_wrong_credentials_fail_at_once_without_asking_again(fake_clock):
    """Bad credentials are an answer, not a glitch: one login, no pause, exit 1."""
    device = WrongPasswordDevice(fake_clock)
    code, out, err = run(device, fake_clock, BASE + "action=reboot\n")
    assert (code, out) == (1, "")
    assert err == "ERROR: login to BMC bmc:623 failed: Incorrect password provided\n"
    assert device.calls == [("login",)]
    assert sum(fake_clock.sleeps) == 0


def test_a_refused_connection_is_tried_again_within_the_login_timeout(fake_clock):
    device = RefusingThenListening(fake_clock, refusals=2)
    code, out, err = run(device, fake_clock, BASE + "action=off\n")
    assert (code, out) == (0, "Success: Powered OFF\n")
    assert [c for c in device.calls if c == ("login",)] == [("login",)] * 3
    assert "WARNING: login: PDU pdu: connection closed (Connection refused); asking again" in err


def test_a_connection_refused_past_the_login_timeout_fails(fake_clock):
    device = RefusingThenListening(fake_clock, refusals=100)
    code, _, err = run(device, fake_clock, BASE + "action=off\nlogin_timeout=3\n")
    assert code == 1
    assert err.splitlines()[-1] == (
        "ERROR: PDU pdu: connection closed (Connection refused) (asked 4 times in 3s)"
    )
    assert not [c for c in device.calls if c[0] == "set"]


def test_a_status_glitch_while_verifying_is_asked_again_over_a_new_login(fake_clock):
    """The session drops while the off is being verified, and again while the on is: each
    read is asked again after a new login; the reboot completes."""
    device = FakePowerDevice(fake_clock, state="on", lag=1.0, glitches={2, 5})
    code, out, err = run(device, fake_clock, BASE + "action=reboot\n")
    assert (code, out) == (0, "Success: Rebooted\n"), err
    assert device.state[None] == "on"
    assert sets_of(device) == ["off", "on"]
    assert device.calls.count(("login",)) == 3
    assert "not back on" not in err
    assert err == "WARNING: get power: BMC bmc: Session no longer connected; asking again\n"


def test_status_reports_a_glitch_at_once(fake_clock):
    """status is a question for the fencer, which asks again itself: no retries there."""
    device = FakePowerDevice(fake_clock, state="on", glitches={1})
    code, out, err = run(device, fake_clock, BASE + "action=status\n")
    assert (code, out) == (1, "")
    assert err == "ERROR: BMC bmc: Session no longer connected\n"


def test_a_final_error_while_powering_on_is_not_asked_again(fake_clock):
    class NoPrivilege(FakePowerDevice):
        def set_power(self, plug, state):
            if state == "on":
                self.calls.append(("set", plug, state))
                raise FenceError("BMC bmc: Insufficient privilege level")
            super().set_power(plug, state)

    device = NoPrivilege(fake_clock, state="on")
    start = fake_clock.now
    code, out, err = run(device, fake_clock, BASE + "action=reboot\n")
    assert (code, out) == (0, "Success: Rebooted\n")
    assert err == "WARNING: powered off, but not back on: BMC bmc: Insufficient privilege level\n"
    assert sets_of(device) == ["off", "on"]
    assert fake_clock.now - start < 1


def test_status_exit_codes(fake_clock):
    assert run(FakePowerDevice(fake_clock, "on"), fake_clock, BASE + "action=status\n")[:2] == (
        0,
        "Status: ON\n",
    )
    assert run(FakePowerDevice(fake_clock, "off"), fake_clock, BASE + "action=status\n")[:2] == (
        2,
        "Status: OFF\n",
    )


def test_list_and_list_status_of_a_multi_outlet_device(fake_clock):
    device = FakePowerDevice(fake_clock, "on", outlets={"1": "node1", "2": "node2"})
    assert run(device, fake_clock, BASE + "action=list\n")[:2] == (0, "1,node1\n2,node2\n")
    assert run(device, fake_clock, BASE + "action=list-status\n")[1] == "1,node1,ON\n2,node2,ON\n"


def test_several_plugs_are_on_while_any_is_on(fake_clock):
    device = FakePowerDevice(fake_clock, "on", outlets={"1": "a", "2": "b"})
    device.state["2"] = "off"
    assert run(device, fake_clock, BASE + "action=status\nplug=1,2\n")[0] == 0
    code, out, _ = run(device, fake_clock, BASE + "action=off\nplug=1,2\n")
    assert (code, device.state) == (0, {"1": "off", "2": "off"})


def test_a_device_that_goes_silent_fails_inside_its_deadline(fake_clock):
    """A real thread deadline: the hanging call is abandoned after shell_timeout seconds."""
    import time

    device = HangingDevice(fake_clock)
    started = time.monotonic()
    code, _, err = run(device, fake_clock, BASE + "action=status\nshell_timeout=0.5\n")
    device.release.set()
    assert code == 1
    assert err == "ERROR: get power: the device did not answer within 0.5s\n"
    assert time.monotonic() - started < 3


def test_errors_never_show_the_password(fake_clock):
    class Refusing(FakePowerDevice):
        def login(self):
            raise RuntimeError("login refused for password hunter2")

    code, _, err = run(Refusing(fake_clock), fake_clock, BASE + "action=status\n")
    assert code == 1
    assert "hunter2" not in err and "***" in err


def test_unknown_action_and_bad_options_exit_1_with_a_message(fake_clock):
    device = FakePowerDevice(fake_clock)
    code, _, err = run(device, fake_clock, BASE + "action=explode\n")
    assert code == 1 and err.startswith("ERROR: unknown action explode")
    code, _, err = run(device, fake_clock, "action=status\n")
    assert code == 1 and "option ip is required" in err
    assert device.calls == []


def test_metadata_needs_no_options_and_is_valid():
    out = io.StringIO()
    code = main(agent_with(None), ["fence_test"], io.StringIO("action=metadata\n"), stdout=out)
    assert code == 0
    root = etree.fromstring(out.getvalue().encode())
    schema = etree.RelaxNG(etree.parse("/usr/share/cluster/relaxng/metadata.rng"))
    assert schema.validate(root), schema.error_log
    assert root.get("shortdesc") == "Test <agent> & friends"
    ip, ipaddr = (
        root.find("parameters/parameter[@name='ip']"),
        root.find("parameters/parameter[@name='ipaddr']"),
    )
    assert ip.get("obsoletes") == "ipaddr" and ipaddr.get("deprecated") == "1"
    assert ip.find("getopt").get("mixed") == "-a, --ip=[ip]"
    assert render_metadata(SPEC) == out.getvalue()


def test_method_cycle_sends_one_cycle_and_verifies_on(fake_clock):
    class Cycling(FakePowerDevice):
        def cycle(self, plug):
            self.calls.append(("cycle", plug))
            self.state[plug] = "on"

    device = Cycling(fake_clock, "on")
    options_text = BASE + "action=reboot\n"
    agent = FenceAgent(
        FenceAgentSpec(
            SPEC.name,
            SPEC.shortdesc,
            SPEC.longdesc,
            "",
            SPEC.options
            + (
                FenceOption(
                    "method", "m", type="select", default="onoff", choices=("onoff", "cycle")
                ),
            ),
            SPEC.actions,
        ),
        lambda config, deadline: device,
    )
    out = io.StringIO()
    code = main(
        agent,
        ["f"],
        io.StringIO(options_text + "method=cycle\n"),
        clock=fake_clock,
        stdout=out,
        stderr=io.StringIO(),
    )
    assert (code, out.getvalue()) == (0, "Success: Rebooted\n")
    assert [c for c in device.calls if c[0] in ("set", "cycle")] == [("cycle", None)]
