"""The OCF contract, applied to every file in agents/ as Pacemaker, pcs and ocf-tester run it."""

import re
import subprocess
from pathlib import Path

import pytest
from agent_runs import OCF_ROOT, run_agent
from lxml import etree
from ocf_checks import DATADIR, XMLLINT_VALID, assert_valid_ocf_1_1
from sandboxes import SANDBOXES
from stackha.agents import declaration

ROOT = Path(__file__).resolve().parents[2]
PACEMAKER_ENV = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}


def spec_of(agent_name):
    return declaration(agent_name).spec


def metadata(installed, agent_name, agent_env, **extra):
    result = run_agent(installed / agent_name, "meta-data", {**agent_env, **extra})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_agent_has_an_ocf_tester_sandbox(agent_name):
    assert agent_name in SANDBOXES, f"add a sandbox for {agent_name} to tests/contract/sandboxes.py"


def test_ocf_1_1_metadata_is_valid(installed, agent_name, agent_env):
    """What Pacemaker gets (it says OCF 1.1): valid OCF 1.1, and metadata.rng-valid besides the
    two attributes that schema predates."""
    assert_valid_ocf_1_1(metadata(installed, agent_name, agent_env, **PACEMAKER_ENV))


def test_metadata_for_callers_that_say_no_version_is_dtd_valid(installed, agent_name, agent_env):
    """What ocf-tester does: xmllint --valid against ra-api-1.dtd."""
    text = metadata(installed, agent_name, agent_env)
    result = subprocess.run(
        list(XMLLINT_VALID),
        input=text,
        cwd=DATADIR,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_metadata_runs_as_nobody(installed, agent_name):
    """Pacemaker and ocf-tester ask for meta-data without root."""
    result = subprocess.run(
        ["runuser", "-u", "nobody", "--", str(installed / agent_name), "meta-data"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "<resource-agent" in result.stdout


def test_crm_resource_reads_the_metadata(installed, agent_name):
    result = subprocess.run(
        ["crm_resource", "--show-metadata", f"ocf:stackha:{agent_name}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    root = etree.fromstring(result.stdout.encode())
    assert root.findtext("version") == "1.1"
    names = [p.get("name") for p in root.iter("parameter")]
    assert names == [p.name for p in spec_of(agent_name).parameters]


def test_pcs_describes_every_parameter(installed, agent_name):
    result = subprocess.run(
        ["pcs", "resource", "describe", f"ocf:stackha:{agent_name}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for parameter in spec_of(agent_name).parameters:
        # pcs 0.11: "  name (required): description"; pcs 0.12: "  name (required)", then
        # "Description:" on the next line (docs/debian13.md)
        assert re.search(rf"^  {parameter.name}( \(.*\))?(: |$)", result.stdout, re.M), (
            parameter.name
        )
    assert "Error" not in result.stderr


def test_ocf_tester_passes_unmodified(installed, agent_name, agent_env, sandbox):
    params = sandbox
    options = [arg for key, value in params.items() for arg in ("-o", f"{key}={value}")]
    result = subprocess.run(
        ["ocf-tester", "-n", f"contract-{agent_name}", *options, str(installed / agent_name)],
        capture_output=True,
        text=True,
        timeout=300,
        env=agent_env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout


def sandbox_env(agent_env, agent_name, params, **extra):
    env = {
        **agent_env,
        "OCF_RESOURCE_INSTANCE": f"contract-{agent_name}",
        **{f"OCF_RESKEY_{k}": v for k, v in params.items()},
    }
    env.update(extra)
    return env


def test_probe_stopped_start_twice_stop_twice(installed, agent_name, agent_env, sandbox):
    """Probe of a stopped service is 7; double start and double stop both succeed."""
    env = sandbox_env(agent_env, agent_name, sandbox, OCF_RESKEY_CRM_meta_interval="0")
    agent = installed / agent_name
    try:
        assert run_agent(agent, "monitor", env).returncode == 7
        assert run_agent(agent, "start", env).returncode == 0
        assert run_agent(agent, "start", env).returncode == 0
        assert run_agent(agent, "monitor", env).returncode == 0
    finally:
        assert run_agent(agent, "stop", env).returncode == 0
    assert run_agent(agent, "stop", env).returncode == 0
    assert run_agent(agent, "monitor", env).returncode == 7


def test_missing_required_parameters_give_6_on_start_but_never_break_stop_or_probe(
    installed, agent_name, agent_env, sandbox
):
    required = [p.name for p in spec_of(agent_name).parameters if p.required]
    env = sandbox_env(agent_env, agent_name, sandbox)
    for name in required:
        env.pop(f"OCF_RESKEY_{name}", None)
    agent = installed / agent_name
    for action, expected in (
        ("start", 6 if required else None),
        ("validate-all", 6 if required else None),
        ("stop", 0),
    ):
        result = run_agent(agent, action, env)
        if expected is not None:
            assert result.returncode == expected, (action, result.stderr)
        if expected == 6:
            assert result.stderr.strip().splitlines()[-1].startswith("ocf-exit-reason:parameter ")
    probe = run_agent(agent, "monitor", {**env, "OCF_RESKEY_CRM_meta_interval": "0"})
    assert probe.returncode == 7, probe.stderr
    if not required:
        run_agent(agent, "stop", env)


def typed_parameters(agent_name):
    return [p for p in spec_of(agent_name).parameters if p.type in ("integer", "boolean", "select")]


def test_a_wrongly_typed_parameter_gives_6_naming_it(installed, agent_name, agent_env, sandbox):
    agent = installed / agent_name
    for parameter in typed_parameters(agent_name):
        env = sandbox_env(
            agent_env, agent_name, sandbox, **{f"OCF_RESKEY_{parameter.name}": "@bad"}
        )
        result = run_agent(agent, "validate-all", env)
        assert result.returncode == 6, result.stderr
        reason = result.stderr.strip().splitlines()[-1]
        assert reason.startswith(f"ocf-exit-reason:parameter {parameter.name}: '@bad'"), reason


def test_unknown_action_is_3_with_a_reason(installed, agent_name, agent_env):
    result = run_agent(installed / agent_name, "frobnicate", agent_env)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("ocf-exit-reason:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("check_level", ["0", "10"])
def test_crm_resource_validate(installed, agent_name, agent_env, sandbox, check_level):
    params = sandbox
    options = [arg for key, value in params.items() for arg in ("--option", f"{key}={value}")]
    result = subprocess.run(
        [
            "crm_resource",
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "stackha",
            "--agent",
            agent_name,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**agent_env, "OCF_CHECK_LEVEL": check_level},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_installed_agent_runs_with_the_system_python_isolated(installed, agent_name):
    first = (installed / agent_name).read_text().splitlines()[0]
    assert first == "#!/usr/bin/python3 -IS"  # debian/install-python-program
    assert OCF_ROOT in str(installed)
