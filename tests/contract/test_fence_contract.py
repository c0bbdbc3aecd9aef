"""The fence-agent contract, applied to every fence/fence_* as pacemaker-fenced, stonith_admin
and pcs run them."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest
from agent_runs import command_lines_watched_for
from lxml import etree
from stackha.fencing.agents import declaration
from stackha.install import fence_agent_files

SBIN = Path("/usr/sbin")
FENCE_RNG = "/usr/share/cluster/relaxng/metadata.rng"
AGENTS = [p.name for p in fence_agent_files()]


def spec_of(name):
    return declaration(name).spec


def run(name, stdin="", argv=(), user=None, timeout=60):
    command = [str(SBIN / name), *argv]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", AGENTS)
def test_metadata_from_stdin_is_valid_against_fence_agents_schema(installed, name):
    result = run(name, "action=metadata\n")
    assert result.returncode == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    schema = etree.RelaxNG(etree.parse(FENCE_RNG))
    assert schema.validate(root), schema.error_log
    assert root.get("name") == name


@pytest.mark.parametrize("name", AGENTS)
def test_metadata_runs_as_nobody(installed, name):
    result = run(name, argv=("-o", "metadata"), user="nobody")
    assert result.returncode == 0, result.stderr
    assert "<resource-agent" in result.stdout


@pytest.mark.parametrize("name", AGENTS)
def test_stonith_admin_and_crm_resource_read_the_metadata(installed, name):
    for command in (
        ["stonith_admin", "--metadata", "--agent", name],
        ["crm_resource", "--show-metadata", f"stonith:{name}"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        root = etree.fromstring(result.stdout.encode())
        names = {p.get("name") for p in root.iter("parameter")}
        assert {o.name for o in spec_of(name).options} <= names


@pytest.mark.parametrize("name", AGENTS)
def test_pcs_stonith_describe_lists_every_option(installed, name):
    result = subprocess.run(
        ["pcs", "stonith", "describe", name], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for option in spec_of(name).options:
        if option.name == "action":
            continue  # pcs hides it: pcmk_off_action/pcmk_reboot_action replace it
        assert re.search(rf"^  {option.name}\b", result.stdout, re.M), option.name


def required_options(name):
    values = {"ip": "192.0.2.1", "username": "admin", "password": "pw"}
    return [f"{o.name}={values.get(o.name, 'x')}" for o in spec_of(name).options if o.required] + [
        "password=pw"
    ]


@pytest.mark.parametrize("name", AGENTS)
def test_stonith_admin_validate_as_pcs_runs_it(installed, name):
    options = [arg for pair in required_options(name) for arg in ("--option", pair)]
    ok = subprocess.run(
        [
            "stonith_admin",
            "--validate",
            "--agent",
            name,
            *options,
            "--option",
            "pcmk_host_list=node1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = subprocess.run(
        ["stonith_admin", "--validate", "--agent", name, "--option", "password=pw"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "is required but not set" in missing.stdout + missing.stderr


@pytest.mark.parametrize("name", AGENTS)
def test_unknown_action_is_exit_1_with_a_message(installed, name):
    result = run(name, "action=explode\n")
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: unknown action explode")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", AGENTS)
def test_the_password_never_reaches_a_command_line(installed, name):
    """Run the agent against an address nothing answers on, reading every process's command
    line meanwhile: the password must appear in none."""
    password = "pw-" + secrets.token_hex(6)
    stdin = (
        "".join(f"{pair}\n" for pair in required_options(name) if not pair.startswith("password="))
        + f"password={password}\naction=status\nlogin_timeout=2\nip=127.0.0.9\n"
    )
    with command_lines_watched_for(password) as seen:
        result = run(name, stdin)
    assert result.returncode == 1
    assert seen == []
    assert password not in result.stderr + result.stdout
