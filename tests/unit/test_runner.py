"""The real runner: argument lists, a clean environment, timeouts, masked log lines."""

import os
import time

import pytest
from stackha.runner import CommandNotFound, CommandTimedOut, Spawn, SubprocessRunner


def test_commands_get_a_clean_environment(monkeypatch):
    monkeypatch.setenv("STACKHA_LEAK", "yes")
    result = SubprocessRunner().run(["/usr/bin/env"], timeout=5)
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env["LC_ALL"] == "C"
    assert env["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    assert "STACKHA_LEAK" not in env


def test_arguments_are_not_interpreted_by_a_shell():
    result = SubprocessRunner().run(["/bin/echo", "$(id)", ";", "|"], timeout=5)
    assert result.stdout == "$(id) ; |\n"


def test_a_command_that_overruns_is_killed_and_reported():
    with pytest.raises(CommandTimedOut, match="did not finish within"):
        SubprocessRunner().run(["/bin/sleep", "10"], timeout=0.2)


def test_a_missing_program_is_reported_by_name():
    with pytest.raises(CommandNotFound, match="/nonexistent/prog: not found"):
        SubprocessRunner().run(["/nonexistent/prog"], timeout=5)


def test_stdin_reaches_the_program():
    assert SubprocessRunner().run(["/bin/cat"], timeout=5, stdin="data").stdout == "data"


def test_secrets_are_masked_in_the_log_line():
    lines = []
    SubprocessRunner(log=lines.append, secrets=["hunter2"]).run(
        ["/bin/true", "--password=hunter2"], timeout=5
    )
    assert lines == ["running: /bin/true --password=***"]


def test_spawn_starts_a_detached_process(tmp_path):
    out = tmp_path / "out.log"
    pid = SubprocessRunner().spawn(
        Spawn(argv=("/bin/sh", "-c", "echo started; sleep 0.2"), output_path=str(out))
    )
    assert os.getsid(pid) == pid  # its own session: a stop of the agent does not reach it
    for _ in range(100):
        if out.exists() and out.read_text():
            break
        time.sleep(0.02)
    assert out.read_text() == "started\n"
