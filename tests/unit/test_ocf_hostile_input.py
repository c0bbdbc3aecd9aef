"""Issue 15, item 3: no traceback leaves an agent, whatever the bytes in its environment.

Each class of the issue's hostile-input run: any byte in a logged value, parameters the spec
cannot read (numbers, lengths, JSON depth), meta attributes Pacemaker never sends, and the last
resort of main(). In process with a small agent defined here, in process with the real agents,
and the real agent files run as Pacemaker runs them (only actions that never look for or stop a
running service: this machine may run a lab).
"""

from __future__ import annotations

import io
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest
from stackha.agents import declaration
from stackha.install import agent_files
from stackha.ocf.agent import Agent, main
from stackha.ocf.context import DEFAULT_TIMEOUT_S, read_context
from stackha.ocf.log import AgentLog, one_line
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import OcfStatus

ROOT = Path(__file__).resolve().parents[2]
AGENT_NAMES = tuple(path.name for path in agent_files())
OCF_CODES = {int(status) for status in OcfStatus}
PREFIX = "ocf-exit-reason:"
BAD = "a\udcffb"  # the byte 0xff, as Python decodes an environment that is not UTF-8
HUGE = "x" * 100_000

SPEC = AgentSpec(
    name="sample",
    version="1.0",
    shortdesc="s",
    longdesc="l",
    parameters=(
        Parameter("address", "a", "a", required=True),
        Parameter("port", "p", "p", type="integer", default=80, minimum=1, maximum=65535),
        Parameter("retries", "r", "r", type="integer", default=3),
        Parameter("flag", "f", "f", type="boolean", default=False),
        Parameter("items", "i", "i", default="[]", json_depth=4),
    ),
    actions=(Action("start", 20), Action("stop", 20), Action("monitor", 20, interval=10)),
)


def run(agent, action, env=None):
    out, err = io.StringIO(), io.StringIO()
    environ = {"OCF_RESOURCE_INSTANCE": "s1", **(env or {})}
    code = main(agent, ["sample", action], environ, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def logging_agent(seen=None):
    def handle(call):
        call.log.info(f"address is {call.config.address}")
        if seen is not None:
            seen.append(call)

    return Agent(SPEC, {"start": handle, "stop": handle, "monitor": handle})


def reasons(err):
    return [line for line in err.splitlines() if line.startswith(PREFIX)]


def assert_one_reason_last(err):
    """Exactly one exit reason, the last line of stderr, and no traceback."""
    assert len(reasons(err)) == 1, err
    assert err.strip().splitlines()[-1].startswith(PREFIX)
    assert "Traceback" not in err


# -- class 4: logging copes with any bytes -----------------------------------------------------


def test_one_line_escapes_bytes_that_were_not_utf8_and_newlines():
    """A lone surrogate (a byte that was not UTF-8) becomes \\xNN, a newline \\n."""
    assert one_line("a\udcffb\nERROR: forged\r\x1b") == "a\\xffb\\nERROR: forged\\r\\x1b"
    assert one_line("plain ü text") == "plain ü text"
    assert len(one_line("y" * 100_000)) < 4100


@pytest.mark.parametrize(
    "env",
    [
        {"OCF_RESKEY_address": BAD},
        {"OCF_RESKEY_address": "a", "OCF_RESOURCE_INSTANCE": "s\udcff1"},
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_CRM_meta_on_node": "n\udcff"},
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_retries": "\udcff"},
    ],
    ids=["parameter", "instance", "node", "number"],
)
@pytest.mark.parametrize("action", ["start", "stop", "monitor", "validate-all", "meta-data"])
def test_a_non_utf8_byte_anywhere_is_escaped_in_ha_logfile_never_a_crash(tmp_path, env, action):
    """With HA_LOGFILE set, as Pacemaker sets it, every action logs such a byte as \\xff."""
    log = tmp_path / "pacemaker.log"
    code, _, err = run(logging_agent(), action, {**env, "HA_LOGFILE": str(log)})
    assert code in OCF_CODES
    assert "Traceback" not in err and len(reasons(err)) <= 1
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    assert "\udcff" not in text and "\udcff" not in err


def test_a_non_utf8_action_name_is_escaped_in_the_log_and_the_reason(tmp_path):
    log = tmp_path / "pacemaker.log"
    code, _, err = run(logging_agent(), "mon\udcffitor", {"HA_LOGFILE": str(log)})
    assert code == OcfStatus.ERR_UNIMPLEMENTED
    assert reasons(err) == [f"{PREFIX}action mon\\xffitor is not supported by sample"]
    assert "mon\\xffitor failed" in log.read_text(encoding="utf-8")


def test_a_message_is_one_line_in_the_log_file_whatever_it_holds(tmp_path):
    """A value with a newline cannot forge a second log line."""
    log = tmp_path / "pacemaker.log"
    code, _, _ = run(
        logging_agent(),
        "start",
        {"OCF_RESKEY_address": "a\nERROR: forged", "HA_LOGFILE": str(log)},
    )
    assert code == 0
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 and lines[0].endswith("INFO: address is a\\nERROR: forged")


def test_syslog_gets_valid_utf8_from_a_non_utf8_tag_and_message(monkeypatch):
    """HA_LOGFACILITY: syslog encodes strictly, as the real module does."""
    import syslog

    sent = []

    def openlog(tag, option, facility):
        tag.encode("utf-8")
        sent.append(tag)

    def send(priority, line):
        line.encode("utf-8")
        sent.append(line)

    monkeypatch.setattr(syslog, "openlog", openlog)
    monkeypatch.setattr(syslog, "syslog", send)
    log = AgentLog("sample(s\udcff1)", facility="daemon", stderr=io.StringIO())
    log.info(f"value {BAD}")
    assert sent[0] == "sample(s\\xff1)" and sent[1].endswith("INFO: value a\\xffb")


def test_a_log_that_cannot_be_written_does_not_fail_the_action():
    class Closed(io.StringIO):
        def write(self, text):
            raise ValueError("I/O operation on closed file")

    AgentLog("t", stderr=Closed()).error("nowhere to go")


# -- class 6 and 4: parameter parsers -----------------------------------------------------------


@pytest.mark.parametrize("text", ["٣", "1_0", " 7 ", "+7", "7.0", "0x10", "9" * 30, "nan", "inf"])
def test_numbers_are_ascii_decimal_only(text):
    """int() takes '٣', '1_0' and ' 7 '; a parameter does not."""
    code, _, err = run(
        logging_agent(), "validate-all", {"OCF_RESKEY_address": "a", "OCF_RESKEY_retries": text}
    )
    assert code == OcfStatus.ERR_CONFIGURED
    assert reasons(err)[0].startswith(f"{PREFIX}parameter retries: ")


@pytest.mark.parametrize("text", ["0", "-1", "65536", "70000"])
def test_a_port_is_1_to_65535(text):
    code, _, err = run(
        logging_agent(), "validate-all", {"OCF_RESKEY_address": "a", "OCF_RESKEY_port": text}
    )
    assert code == OcfStatus.ERR_CONFIGURED
    assert reasons(err)[0].startswith(f"{PREFIX}parameter port: ")


def test_every_agents_ports_and_timeouts_are_bounded():
    """Every integer parameter of every agent has bounds; ports 1-65535, timeouts from 1."""
    for name in AGENT_NAMES:
        for parameter in declaration(name).spec.parameters:
            if parameter.type != "integer":
                continue
            assert parameter.minimum is not None and parameter.maximum is not None, parameter
            if parameter.name.endswith("port"):
                assert (parameter.minimum, parameter.maximum) == (1, 65535), parameter
            if "timeout" in parameter.name:
                assert parameter.minimum >= 1, parameter


@pytest.mark.parametrize("name", ["address", "retries", "flag", "items"])
def test_a_100kb_value_is_refused_naming_the_parameter_showing_100_characters(name):
    code, _, err = run(
        logging_agent(), "validate-all", {"OCF_RESKEY_address": "a", f"OCF_RESKEY_{name}": HUGE}
    )
    assert code == OcfStatus.ERR_CONFIGURED
    (reason,) = reasons(err)
    assert reason.startswith(f"{PREFIX}parameter {name}: ")
    assert len(reason) < 250


def test_a_bad_value_is_shown_cut_to_100_characters():
    value = "1" + "z" * 2000
    code, _, err = run(
        logging_agent(), "start", {"OCF_RESKEY_address": "a", "OCF_RESKEY_flag": value}
    )
    assert code == OcfStatus.ERR_CONFIGURED
    (reason,) = reasons(err)
    assert f"'{value[:100]}'... (2001 characters) is not a boolean" in reason
    assert "z" * 101 not in reason


def test_a_non_utf8_value_is_refused_with_6_naming_the_parameter():
    code, _, err = run(logging_agent(), "start", {"OCF_RESKEY_address": BAD})
    assert code == OcfStatus.ERR_CONFIGURED
    assert reasons(err) == [f"{PREFIX}parameter address: 'a\\xffb' is not valid UTF-8"]


def test_json_nested_100000_deep_is_a_clean_6_not_recursion_error():
    code, _, err = run(
        logging_agent(),
        "validate-all",
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_items": "[" * 100_000},
    )
    assert code == OcfStatus.ERR_CONFIGURED
    assert "parameter items: is 100000 characters long" in reasons(err)[0]
    code, _, err = run(
        logging_agent(), "validate-all", {"OCF_RESKEY_address": "a", "OCF_RESKEY_items": "[" * 3000}
    )
    assert code == OcfStatus.ERR_CONFIGURED
    assert reasons(err) == [f"{PREFIX}parameter items: nests deeper than 4 levels"]
    code, _, err = run(
        logging_agent(),
        "validate-all",
        {"OCF_RESKEY_address": "a", "OCF_RESKEY_items": '[{"a": "[[[[[["}]'},
    )
    assert code == 0  # brackets inside strings do not nest


@pytest.mark.parametrize("name", ["users", "policies"])
def test_rabbitmqs_json_parameters_nested_100000_deep_give_6_naming_them(name):
    rabbitmq = declaration("rabbitmq")
    for value in ("[" * 100_000, "[" * 60_000 + "]" * 60_000):
        err = io.StringIO()
        code = main(
            rabbitmq,
            ["rabbitmq", "validate-all"],
            {"OCF_RESOURCE_INSTANCE": "rabbitmq:0", f"OCF_RESKEY_{name}": value},
            stdout=io.StringIO(),
            stderr=err,
        )
        assert code == OcfStatus.ERR_CONFIGURED
        assert_one_reason_last(err.getvalue())
        assert reasons(err.getvalue())[0].startswith(f"{PREFIX}parameter {name}: ")


# -- class 3 and 4: meta attributes Pacemaker never sends ---------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("clone_max", "abc"),
        ("clone_max", "٣"),
        ("timeout", "9" * 30),
        ("timeout", "1e999"),
        ("interval", "\udcff"),
        ("promoted_max", "-1"),
        ("on_node", "n\udcff"),
        ("on_node", "n" * 100_000),
    ],
)
def test_a_meta_attribute_pacemaker_never_sends_is_absent_with_a_warning(name, value):
    context = read_context(["x", "monitor"], {f"OCF_RESKEY_CRM_meta_{name}": value})
    assert name not in context.meta
    (warning,) = context.warnings
    assert warning.startswith(f"ignoring OCF_RESKEY_CRM_meta_{name}=") and len(warning) < 250
    assert context.timeout_s == DEFAULT_TIMEOUT_S and context.node is None
    assert context.clone_max is None and not context.is_clone and context.is_probe


def test_a_garbage_meta_attribute_is_logged_and_fails_neither_stop_nor_a_probe():
    seen = []
    for action in ("stop", "monitor"):
        code, _, err = run(
            logging_agent(seen),
            action,
            {
                "OCF_RESKEY_address": "a",
                "OCF_RESKEY_CRM_meta_clone_max": "abc",
                "OCF_RESKEY_CRM_meta_timeout": "9" * 30,
            },
        )
        assert code == 0
        assert "WARNING: ignoring OCF_RESKEY_CRM_meta_clone_max='abc'" in err
    assert [call.deadline.seconds for call in seen] == [DEFAULT_TIMEOUT_S] * 2


def test_rabbitmq_stop_and_probe_survive_clone_max_abc(tmp_path):
    """The issue's case: rabbitmq failed every action, stop and probe included, with ValueError.
    Every path points under tmp_path: nothing of this machine's is looked at."""
    rabbitmq = declaration("rabbitmq")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "OCF_RESOURCE_INSTANCE": "rabbitmq:0",
        "OCF_RESKEY_CRM_meta_clone_max": "abc",
        "OCF_RESKEY_CRM_meta_on_node": "node1",
        "OCF_RESKEY_user": pwd.getpwuid(os.getuid()).pw_name,
        "OCF_RESKEY_home": str(home),
        "OCF_RESKEY_pid_file": str(tmp_path / "run" / "pid"),
        "OCF_RESKEY_mnesia_base": str(tmp_path / "mnesia"),
        "OCF_RESKEY_log_dir": str(tmp_path / "log"),
        "HA_RSCTMP": str(tmp_path / "rsctmp"),
    }
    for action, expected in (("stop", 0), ("monitor", 7)):
        err = io.StringIO()
        code = main(rabbitmq, ["rabbitmq", action], env, stdout=io.StringIO(), stderr=err)
        assert code == expected, err.getvalue()
        assert "ignoring OCF_RESKEY_CRM_meta_clone_max='abc'" in err.getvalue()


def test_a_100kb_resource_instance_is_a_clean_6_before_any_handler():
    calls = []
    for action in ("start", "stop", "monitor", "validate-all"):
        code, _, err = run(
            logging_agent(calls),
            action,
            {"OCF_RESKEY_address": "a", "OCF_RESOURCE_INSTANCE": "r" * 100_000},
        )
        assert code == OcfStatus.ERR_CONFIGURED
        assert_one_reason_last(err)
        assert "is 100000 characters long, more than 200" in reasons(err)[0]
        assert len(reasons(err)[0]) < 300
    assert calls == []
    assert run(logging_agent(), "meta-data", {"OCF_RESOURCE_INSTANCE": "r" * 100_000})[0] == 0


# -- the last resort ---------------------------------------------------------------------------


def test_a_bug_gives_one_reason_line_and_no_traceback_on_stderr(tmp_path):
    """The traceback goes to the log at debug level; stderr has one line of explanation."""

    def start(call):
        raise ValueError("bad\nocf-exit-reason:forged " + "w" * 5000)

    log = tmp_path / "pacemaker.log"
    code, _, err = run(
        Agent(SPEC, {"start": start}),
        "start",
        {"OCF_RESKEY_address": "a", "HA_LOGFILE": str(log), "HA_debug": "1"},
    )
    assert code == OcfStatus.ERR_GENERIC
    assert_one_reason_last(err)
    assert reasons(err)[0].startswith(
        f"{PREFIX}internal error: ValueError: bad\\nocf-exit-reason:forged"
    )
    assert len(reasons(err)[0]) < 300
    text = log.read_text(encoding="utf-8")
    assert "DEBUG: Traceback (most recent call last):" in text
    assert "(raised at test_ocf_hostile_input.py:" in text


class Unreadable(dict):
    """An environment whose reading fails: the worst start main() can have."""

    def items(self):
        raise RuntimeError("environment unreadable")


@pytest.mark.parametrize(
    "action", ["meta-data", "validate-all", "start", "stop", "monitor", "nope"]
)
def test_whatever_fails_every_action_ends_with_an_ocf_code_and_one_reason(action):
    err = io.StringIO()
    code = main(logging_agent(), ["sample", action], Unreadable(), stdout=io.StringIO(), stderr=err)
    assert code == OcfStatus.ERR_GENERIC
    assert reasons(err.getvalue()) == [
        f"{PREFIX}internal error: RuntimeError: environment unreadable"
    ]
    assert "Traceback" not in err.getvalue()


def test_meta_data_that_cannot_be_written_is_an_ocf_code_and_a_reason():
    class BrokenPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    code = main(logging_agent(), ["sample", "meta-data"], {}, stdout=BrokenPipe(), stderr=err)
    assert code == OcfStatus.ERR_GENERIC
    assert_one_reason_last(err.getvalue())


# -- the agents as Pacemaker runs them ---------------------------------------------------------


def run_file(name, action, env):
    """agents/NAME run as pacemaker-execd runs it: its own process, an environment of bytes.
    With this tree's library (PYTHONPATH, which -I would ignore: the interpreter's own
    site-packages may hold another tree's)."""
    environ = {
        b"PATH": b"/usr/sbin:/usr/bin:/sbin:/bin",
        b"LC_ALL": b"C",
        b"PYTHONPATH": str(ROOT / "lib").encode(),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "agents" / name), action],
        env=environ,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_each_agent_with_non_utf8_bytes_everywhere_exits_cleanly(tmp_path, name):
    """Every parameter and the node hold the byte 0xff, HA_LOGFILE set as Pacemaker sets it
    (syslog is tested above, not written to here): validate-all, meta-data and an unknown
    action (mon\\xffitor) each give an OCF code, at most one reason and no traceback. stop and a
    probe run only with an instance refused before any handler: with bad values they look for
    the service with defaults, and this machine may run one."""
    agent = declaration(name)
    log = tmp_path / "pacemaker.log"
    env = {f"OCF_RESKEY_{p.name}".encode(): b"x\xff" for p in agent.spec.parameters}
    env.update(
        {
            b"OCF_RESOURCE_INSTANCE": f"{name}:0".encode(),
            b"OCF_RESKEY_CRM_meta_on_node": b"node\xff",
            b"OCF_RESKEY_CRM_meta_clone_max": b"abc",
            b"OCF_RESKEY_CRM_meta_timeout": b"9" * 30,
            b"HA_LOGFILE": str(log).encode(),
            b"HA_LOGFACILITY": b"none",
        }
    )
    for action, expected in (("validate-all", 6), ("meta-data", 0), ("mon\udcffitor", 3)):
        result = run_file(name, action, env)
        err = result.stderr.decode("utf-8")  # valid UTF-8 too
        assert result.returncode == expected, err
        assert "Traceback" not in err
        assert len(reasons(err)) == (0 if expected == 0 else 1)
    text = log.read_text(encoding="utf-8")
    assert "node\\xff" in text and "mon\\xffitor" in text
    for action in ("stop", "monitor"):  # refused before any handler looks for anything
        result = run_file(
            name, action, {**env, b"OCF_RESOURCE_INSTANCE": b"r\xff" + b"r" * 100_000}
        )
        assert result.returncode == 6
        assert_one_reason_last(result.stderr.decode("utf-8"))


# -- class 4: what else raised out of an agent --------------------------------------------------


def test_credentials_and_password_files_that_are_not_utf8_are_named_not_raised(tmp_path):
    from stackha.services import rabbitmq

    path = tmp_path / "credentials"
    path.write_bytes(b"username=stackha\npassword=\xff\xfe\n")
    with pytest.raises(rabbitmq.CredentialsError, match="is not UTF-8 text"):
        rabbitmq.read_credentials(str(path))
    with pytest.raises(rabbitmq.CredentialsError, match="is not UTF-8 text"):
        rabbitmq.read_password(str(path))


def test_rabbitmq_validate_all_refuses_a_user_that_does_not_exist_even_with_home_set(tmp_path):
    """validate-all said 0, then start failed with KeyError when it chowned the directories."""
    rabbitmq = declaration("rabbitmq")
    binaries = {}
    for name in ("rabbitmq-server", "rabbitmqctl"):
        binaries[name] = tmp_path / name
        binaries[name].write_text("#!/bin/sh\nexit 99\n")  # never run
        binaries[name].chmod(0o755)
    err = io.StringIO()
    code = main(
        rabbitmq,
        ["rabbitmq", "validate-all"],
        {
            "OCF_RESOURCE_INSTANCE": "rabbitmq:0",
            "OCF_RESKEY_server": str(binaries["rabbitmq-server"]),
            "OCF_RESKEY_ctl": str(binaries["rabbitmqctl"]),
            "OCF_RESKEY_user": "nosuchuser-stackha",
            "OCF_RESKEY_home": str(tmp_path),
        },
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == OcfStatus.ERR_INSTALLED
    assert reasons(err.getvalue()) == [f"{PREFIX}user nosuchuser-stackha does not exist"]


@pytest.mark.parametrize("kind", ["directory", "parent is a file"])
def test_an_api_agents_log_file_that_cannot_be_one_is_not_installed(tmp_path, kind):
    from stackha.agents.api_service import create_log
    from stackha.ocf.status import NotInstalled

    if kind == "directory":
        path = tmp_path / "keystone.log"
        path.mkdir()
    else:
        (tmp_path / "file").write_text("")
        path = tmp_path / "file" / "keystone.log"
    with pytest.raises(NotInstalled, match=f"log_file {path}"):
        create_log(str(path), pwd.getpwuid(os.getuid()).pw_name)


def test_galera_quorum_bootstrap_outside_pacemaker_asks_no_crm_mon(tmp_path, fake_runner):
    """bootstrap_with_quorum=true run by hand: no cluster fenced anyone, so crm_mon is not run
    (it failed the action with CommandError). One member of three reported: no bootstrap."""
    galera = declaration("galera")
    rsctmp = tmp_path / "rsctmp"
    rsctmp.mkdir()
    uuid = "8d6a3f38-5c2e-11ee-9b4a-2a4c1e0f0a12"
    (rsctmp / "stackha-galera.attributes.json").write_text(f'{{"galera-position": "{uuid}:12"}}')
    err = io.StringIO()
    code = main(
        galera,
        ["galera", "monitor"],
        {
            "OCF_RESOURCE_INSTANCE": "galera:0",
            "HA_RSCTMP": str(rsctmp),
            "OCF_RESKEY_wsrep_cluster_address": "gcomm://127.0.0.1:1,127.0.0.2:1,127.0.0.3:1",
            "OCF_RESKEY_cluster_host_map": "node1:127.0.0.1;node2:127.0.0.2;node3:127.0.0.3",
            "OCF_RESKEY_pid": str(tmp_path / "mysqld.pid"),
            "OCF_RESKEY_bootstrap_with_quorum": "true",
            "OCF_RESKEY_CRM_meta_on_node": "node1",
            "OCF_RESKEY_CRM_meta_interval": "20000",
            "OCF_RESKEY_CRM_meta_role": "Unpromoted",
        },
        runner=fake_runner,
        stdout=io.StringIO(),
        stderr=err,
    )
    assert code == 0, err.getvalue()
    assert reasons(err.getvalue()) == []


def test_a_check_level_that_is_not_a_number_is_depth_0_with_a_warning():
    context = read_context(["x", "monitor"], {"OCF_CHECK_LEVEL": "1_0"})
    assert context.check_level == 0
    assert context.warnings == ("ignoring OCF_CHECK_LEVEL='1_0': not a number",)
    assert read_context(["x", "monitor"], {"OCF_RESKEY_OCF_CHECK_LEVEL": "10"}).check_level == 10


@pytest.mark.parametrize("name", AGENT_NAMES)
def test_a_relative_path_parameter_is_refused_naming_it(name):
    """A path parameter (its default is an absolute path) given as a relative path would name
    a file in whatever directory Pacemaker runs the agent from: haproxy wrote its pid file
    into the working directory. Refused with 6 on validate-all, naming the parameter."""
    agent = declaration(name)
    parameter = next(p for p in agent.spec.parameters if p.is_path())
    out, err = io.StringIO(), io.StringIO()
    environ = {"OCF_RESOURCE_INSTANCE": f"{name}:0", f"OCF_RESKEY_{parameter.name}": "run/x.pid"}
    code = main(agent, [name, "validate-all"], environ, stdout=out, stderr=err)
    assert code == 6, err.getvalue()
    assert_one_reason_last(err.getvalue())
    assert f"parameter {parameter.name}: 'run/x.pid' is not an absolute path" in err.getvalue()
