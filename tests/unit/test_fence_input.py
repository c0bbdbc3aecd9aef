"""The fence agents against hostile input: no secret in any message, password_script on the
agent's own login budget, one line per message, numbers and timeouts that mean what they say,
and no traceback."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_devices import FakePowerDevice
from fakes import FakeRunner
from stackha.fencing import spec as options
from stackha.fencing.agent import FenceAgent, main
from stackha.fencing.options import OptionsError, parse
from stackha.fencing.spec import FenceAgentSpec, FenceOption
from stackha.runner import CommandError, Result, SubprocessRunner

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-s3cret"

SPEC = FenceAgentSpec(
    name="fence_test",
    shortdesc="Test",
    longdesc="For the tests.",
    vendor_url="",
    options=(
        options.IP,
        FenceOption("ipport", "port", type="integer", default=623, minimum=1, maximum=65535),
        options.USERNAME,
        options.PASSWORD,
        options.PASSWORD_SCRIPT,
        options.PLUG,
        *options.COMMON,
    ),
    actions=("on", "off", "reboot", "status", "monitor", "metadata", "validate-all"),
)
BASE = [("ip", "bmc"), ("username", "admin"), ("password", "pw")]


class RunnerLikeTheRealOne(FakeRunner):
    """The fake runner, failing as SubprocessRunner does (its message quotes the command's
    last line of output), and noting the timeout each command was given."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def run(self, argv, *, timeout, stdin=None, env=None, check=False):
        self.timeouts.append(timeout)
        result: Result = super().run(argv, timeout=timeout, stdin=stdin, env=env, check=False)
        if check and not result.ok:
            raise CommandError(
                f"{argv[0]} failed (exit {result.returncode}): {result.output_line()}", result
            )
        return result


def run_main(stdin_text, argv=("fence_test",), runner=None, device=None, clock=None):
    device = device or FakePowerDevice(clock)
    out, err = io.StringIO(), io.StringIO()
    code = main(
        FenceAgent(SPEC, lambda config, deadline: device),
        list(argv),
        io.StringIO(stdin_text),
        runner=runner,
        clock=clock,
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue(), err.getvalue()


def one_error_line(err):
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("ERROR: "), err
    return err


SCRIPT = "ip=bmc\nusername=admin\npassword_script=/usr/local/bin/bmc-pass node1\naction=status\n"


@pytest.mark.parametrize(
    "stdout, stderr",
    [
        (f"{PASSWORD}\n", ""),
        ("", f"{PASSWORD}\n"),
        (f"{PASSWORD}\n", "vault: token expired\n"),
        ("line one\nline two\n", ""),  # stdout of a failing script is a secret, whatever it says
    ],
)
def test_a_failing_password_script_never_shows_what_it_printed(fake_clock, stdout, stderr):
    """A script that fails after printing is named with its exit status and how much it
    printed, never with what it printed."""
    runner = RunnerLikeTheRealOne()
    runner.expect(["/usr/local/bin/bmc-pass", "node1"], 3, stdout=stdout, stderr=stderr)
    code, _, err = run_main(SCRIPT, runner=runner, clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert "password_script /usr/local/bin/bmc-pass failed (exit 3)" in err
    for line in (stdout + stderr).splitlines():
        assert line not in err
    runner.assert_done()


def test_a_real_failing_password_script_never_shows_the_password(tmp_path, fake_clock):
    """The same through the real runner and a real script that prints and exits 3."""
    script = tmp_path / "bmc-pass"
    script.write_text(f"#!/bin/sh\necho {PASSWORD}\necho {PASSWORD} >&2\nexit 3\n")
    script.chmod(0o755)
    text = f"ip=bmc\nusername=admin\npassword_script={script}\naction=status\n"
    code, out, err = run_main(text, runner=SubprocessRunner(), clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert PASSWORD not in err + out
    assert "exit 3" in err


def test_the_password_script_gets_the_login_timeout_not_30_seconds(fake_clock):
    """login_timeout is the script's budget (the default 5 s when unset)."""
    for extra, budget in (("login_timeout=7\n", 7.0), ("", 5.0)):
        runner = RunnerLikeTheRealOne()
        runner.expect(["/usr/local/bin/bmc-pass", "node1"], stdout=f"{PASSWORD}\n")
        code, out, _ = run_main(SCRIPT + extra, runner=runner, clock=fake_clock)
        assert (code, out) == (0, "Status: ON\n")
        assert runner.timeouts == [budget]


def test_a_password_script_that_overruns_is_one_line_and_exit_1(fake_clock):
    """A script killed at the end of its budget is one ERROR line naming it and the budget."""
    runner = RunnerLikeTheRealOne()
    runner.expect(["/usr/local/bin/bmc-pass", "node1"], timed_out=True)
    code, _, err = run_main(SCRIPT + "login_timeout=2\n", runner=runner, clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert "password_script /usr/local/bin/bmc-pass" in err and "2s" in err


def test_a_real_hanging_password_script_is_killed_when_the_login_budget_is_spent(tmp_path):
    """A script that never finishes is killed after login_timeout, not after a fixed 30 s."""
    script = tmp_path / "bmc-pass"
    script.write_text(f"#!/bin/sh\necho {PASSWORD}\nexec sleep 60\n")
    script.chmod(0o755)
    text = f"ip=bmc\nusername=admin\npassword_script={script}\nlogin_timeout=0.5\naction=status\n"
    started = time.monotonic()
    code, _, err = run_main(text, runner=SubprocessRunner(), clock=None)
    assert time.monotonic() - started < 5
    assert code == 1
    one_error_line(err)
    assert PASSWORD not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["fence_test", "--ip\nERROR: forged=x"],
        ["fence_test", "--ip=bmc", "-l", "u", "-p", "pw", "-o", "status\nERROR: forged"],
        ["fence_test", "bogus\nERROR: forged"],
        ["fence_test", "--ip=bmc", "-l", "u", "-p", "pw", "--ipport=1\nERROR: forged"],
    ],
)
def test_a_newline_on_argv_cannot_forge_a_second_error_line(fake_clock, argv):
    """A newline in an option name, an action or a value on argv is written as \\n."""
    code, _, err = run_main("", argv=argv, clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert "\\n" in err


def test_control_characters_in_stdin_names_and_values_are_escaped(fake_clock):
    """An unknown name's warning, and an error quoting a value, are one line each."""
    text = "ip=bmc\nusername=admin\npassword=pw\nbad\rERROR: forged=1\naction=status\n"
    code, out, err = run_main(text, clock=fake_clock, device=FakePowerDevice(fake_clock))
    assert (code, out) == (0, "Status: ON\n")
    assert err == "WARNING: ignoring unknown option bad\\rERROR: forged\n"
    code, _, err = run_main(text + "action=status\x1b[2J\u2028x\n", clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert "\x1b" not in err and "\u2028" not in err
    assert "unknown action status\\x1b[2j\\u2028x (one of" in err


def test_a_secret_is_masked_in_warnings_and_in_its_escaped_form(fake_clock):
    """A password holding a newline is masked as given, escaped and quoted."""

    class Chatty(FakePowerDevice):
        def login(self):
            raise RuntimeError(f"refused {PASSWORD}\n{PASSWORD!r}")

    argv = ["fence_test", "--ip=bmc", "-l", "u", f"--password={PASSWORD}\n", "-o", "status"]
    code, _, err = run_main("", argv=argv, device=Chatty(fake_clock), clock=fake_clock)
    assert code == 1
    one_error_line(err)
    assert "hunter2" not in err and "***" in err


@pytest.mark.parametrize("value", ["٣", "1_0", " 7 ", "7 ", "+7", "0x10", "", "1e3"])
def test_integers_are_ascii_decimal_only(value):
    """Only ASCII digits make an integer; int() alone takes Arabic-Indic digits, _ and spaces."""
    if value == "":
        assert parse(SPEC, BASE + [("ipport", value)]).config.ipport == 623  # unset: the default
        return
    with pytest.raises(OptionsError, match="option ipport: .* is not an integer"):
        parse(SPEC, BASE + [("ipport", value)])


@pytest.mark.parametrize("value", ["-1", "0", "65536", "70000", "99999999999"])
def test_ipport_is_1_to_65535(value):
    """A port outside 1-65535 is refused with the range it must be in."""
    with pytest.raises(OptionsError, match=r"option ipport: .* is not in 1-65535"):
        parse(SPEC, BASE + [("ipport", value)])
    assert parse(SPEC, BASE + [("ipport", "65535")]).config.ipport == 65535
    with pytest.raises(OptionsError, match=r"option ipport: '9{30}' is out of range"):
        parse(SPEC, BASE + [("ipport", "9" * 30)])


def test_the_agents_refuse_ipport_0_rather_than_use_623():
    """Both agents declare ipport's range: 0 is an error, not the default port."""
    from stackha.fencing.agents import MODULES, declaration

    for name in MODULES:
        with pytest.raises(OptionsError, match="option ipport: '0' is not in 1-65535"):
            parse(declaration(name).spec, BASE + [("ipport", "0")])


@pytest.mark.parametrize("name", ["login_timeout", "power_timeout", "shell_timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "0", "0.0", "-1", "١"])
def test_timeouts_are_finite_and_positive(name, value):
    """A timeout of 0, a negative, a non-finite or a non-ASCII number is refused."""
    with pytest.raises(OptionsError, match=f"option {name}: "):
        parse(SPEC, BASE + [(name, value)])


@pytest.mark.parametrize("name", ["delay", "power_wait"])
def test_waits_may_be_zero_but_must_be_finite(name):
    """delay and power_wait may be 0, but nothing infinite or negative."""
    assert parse(SPEC, BASE + [(name, "0")]).config[name] == 0.0
    for value in ("nan", "inf", "1e999", "-1"):
        with pytest.raises(OptionsError, match=f"option {name}: "):
            parse(SPEC, BASE + [(name, value)])


def test_a_timeout_of_0_is_refused_at_validate_all_not_turned_into_5s(fake_clock):
    """validate-all (what pcs runs) refuses login_timeout=0 in one line."""
    code, _, err = run_main(
        "ip=bmc\nusername=a\npassword=pw\nlogin_timeout=0\naction=validate-all\n",
        clock=fake_clock,
    )
    assert code == 1
    one_error_line(err)
    assert "option login_timeout: '0' is not a positive number of seconds" in err


@pytest.mark.parametrize(
    "stdin_text, argv",
    [
        ("ip=bmc\nusername=a\npassword=pw\nipport=" + "9" * 100_000 + "\n", ("f",)),
        ("ip=bmc\nusername=a\npassword=pw\naction=" + "x" * 100_000 + "\n", ("f",)),
        ("ip=bmc\nusername=a\npassword=pw\n" + "n" * 100_000 + "=1\naction=status\n", ("f",)),
        ("", ("f", "--" + "n" * 100_000)),
        ("", ("f", "x" * 100_000)),
    ],
)
def test_values_echoed_in_messages_are_cut(fake_clock, stdin_text, argv):
    """A 100 KB value shows as its first ~100 characters and its length."""
    _, _, err = run_main(stdin_text, argv=argv, clock=fake_clock)
    assert err.startswith(("ERROR: ", "WARNING: "))
    for line in err.splitlines():
        assert len(line) < 400, line[:200]
    assert "100000 characters" in err or "100002 characters" in err


@pytest.mark.parametrize("name", ["fence_stackha_ipmi", "fence_stackha_pdu"])
@pytest.mark.parametrize(
    "argv, stdin",
    [
        ([], b"ip=bmc\nusername=a\npassword=pw\nipport=\xff\xfe\naction=validate-all\n"),
        ([], b"ip=bmc\nusername=a\npassword=pw\n\xff=1\naction=\xff\n"),
        (
            ["--ip=bmc", "-l", "a", "-p", "pw", b"--ipport=\xff".decode(errors="surrogateescape")],
            b"",
        ),
        (["--ip=bmc", "-l", "a", "-p", "pw", "--delay=1e300", "-o", "off"], b""),
        (["--ip=bmc", "-l", "a", "-p", "pw", "--login-timeout=nan", "-o", "status"], b""),
    ],
)
def test_the_agents_exit_1_with_one_line_never_a_traceback(name, argv, stdin):
    """The real executables, on bytes that are not UTF-8 and numbers that overflow."""
    for locale in ("C", "C.UTF-8"):
        result = subprocess.run(
            [sys.executable, str(ROOT / "fence" / name), *argv],
            input=stdin,
            capture_output=True,
            timeout=30,
            # this tree's library, whatever the interpreter's own site-packages holds
            env={"PATH": "/usr/bin:/bin", "LC_ALL": locale, "PYTHONPATH": str(ROOT / "lib")},
        )
        stderr = result.stderr.decode(errors="replace")
        assert result.returncode == 1, stderr
        assert "Traceback" not in stderr
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR: ")]
        assert len(errors) == 1, stderr
        assert all(line.startswith(("ERROR: ", "WARNING: ")) for line in stderr.splitlines())


class PduConnection:
    """pexpect's spawn as the PDU driver sees it: every command gets ``reply``."""

    def __init__(self, reply):
        self.before = reply
        self.sent = []

    def sendline(self, line):
        self.sent.append(line)

    def expect(self, patterns):
        return 0


def test_pdu_units_and_outlet_numbers_are_ascii_digits():
    """'٣' is no unit and no outlet number: it is looked up as an outlet's name."""
    from stackha.fencing.pdu import ApcPdu, PduError, check_unit

    with pytest.raises(PduError, match="switch '٣': a unit of a PDU chain"):
        check_unit("٣")
    pdu = ApcPdu("10.0.0.9", 23, "apc", "pw", ssh=False)
    pdu.connection = PduConnection(" 1: db1: On\r\nE000: Success\r\n")
    with pytest.raises(PduError, match="no outlet named ٣"):
        pdu.get_power("٣")
    assert pdu.connection.sent == ["olStatus all"]


def test_device_messages_cut_a_100kb_address_and_plug():
    """A device error shows a 100 KB address and plug as 100 characters and their length."""
    from stackha.fencing.pdu import ApcPdu, PduError

    pdu = ApcPdu("a" * 100_000, 23, "apc", "pw", ssh=False)
    pdu.connection = PduConnection("E102: Parameter Error\r\n")
    with pytest.raises(PduError) as raised:
        pdu.set_power("9" * 100_000, "off")
    assert len(str(raised.value)) < 400
    assert "(100000 characters)" in str(raised.value)
