"""ocf:stackha:rabbitmq against a real RabbitMQ broker on loopback, outside Pacemaker
(standalone: its attribute in a file): form, monitor at both depths, stop, probe, a restart and
a kill -9 that keep the node's data, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from agent_runs import BASE_ENV, command_lines_watched_for, exit_reason, run_agent
from lab_helpers import wait_for
from rabbitmq_sandbox import one_node_rabbitmq

INSTANCE = "integration-rabbitmq"
PROBE = {"OCF_RESKEY_CRM_meta_interval": "0"}
MONITOR = {"OCF_RESKEY_CRM_meta_interval": "10000"}
DEEP = {**MONITOR, "OCF_CHECK_LEVEL": "10"}
POLICIES = json.dumps(
    [{"name": "limits", "pattern": "^limited\\.", "definition": {"max-length": 1000}}]
)


@pytest.fixture
def broker(installed, tmp_path):
    password = os.urandom(9).hex()
    with one_node_rabbitmq() as (params, directory):
        secret = directory / "openstack.password"
        secret.write_text(password + "\n")
        secret.chmod(0o600)
        users = [
            {
                "name": "openstack",
                "password_file": str(secret),
                "permissions": {"openstack": [".*", ".*", ".*"]},
            }
        ]
        env = {
            **BASE_ENV,
            "OCF_RESOURCE_INSTANCE": INSTANCE,
            "HA_RSCTMP": str(tmp_path / "rsctmp"),
            **{f"OCF_RESKEY_{key}": value for key, value in params.items()},
            "OCF_RESKEY_vhosts": "/ openstack",
            "OCF_RESKEY_users": json.dumps(users),
            "OCF_RESKEY_policies": POLICIES,
        }
        agent = installed / "rabbitmq"
        yield agent, env, params, password
        run_agent(agent, "stop", env, timeout=120)


def call(broker, action, **extra):
    agent, env, _, _ = broker
    return run_agent(agent, action, {**env, **extra}, timeout=240)


def ctl(broker, *argv):
    _, env, params, _ = broker
    ctl_env = {
        **BASE_ENV,
        "HOME": params["home"],
        "RABBITMQ_NODENAME": params["nodename"],
        "RABBITMQ_CONF_ENV_FILE": params["env_file"],
    }
    result = subprocess.run(
        ["/usr/lib/rabbitmq/bin/rabbitmqctl", *argv, "--formatter", "json"],
        capture_output=True,
        text=True,
        env=ctl_env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def definitions(broker):
    users = sorted(u["user"] for u in ctl(broker, "list_users"))
    vhosts = sorted(v["name"] for v in ctl(broker, "list_vhosts"))
    policies = sorted(p["name"] for p in ctl(broker, "list_policies"))
    return users, vhosts, policies


EXPECTED = (["guest", "openstack", "stackha-monitor"], ["/", "openstack"], ["limits"])


def test_form_monitor_stop_probe_and_restart_with_the_data(broker):
    _, _, _, password = broker
    assert call(broker, "monitor", **PROBE).returncode == 7
    with command_lines_watched_for(password) as exposed:
        result = call(broker, "start")
    assert result.returncode == 0, result.stderr
    assert not exposed, "a password was on a command line"
    assert password not in result.stderr
    assert "formed a new cluster" in result.stderr
    for depth in (MONITOR, DEEP, PROBE):
        result = call(broker, "monitor", **depth)
        assert result.returncode == 0, result.stderr
    assert definitions(broker) == EXPECTED
    # 3.10.8 has add_vhost --default-queue-type: the vhost the agent made defaults to quorum
    types = {
        v["name"]: v["default_queue_type"]
        for v in ctl(broker, "list_vhosts", "name", "default_queue_type")
    }
    assert types["openstack"] == "quorum"
    assert call(broker, "stop").returncode == 0
    assert call(broker, "monitor", **PROBE).returncode == 7
    assert call(broker, "monitor", **MONITOR).returncode == 7
    result = call(broker, "start")
    assert result.returncode == 0, result.stderr
    assert "rejoined its cluster with its data" in result.stderr
    assert definitions(broker) == EXPECTED


def test_a_killed_broker_is_not_running_and_comes_back_with_its_data(broker):
    _, _, params, _ = broker
    assert call(broker, "start").returncode == 0
    ctl(broker, "add_vhost", "made-by-hand")
    pid = int(open(params["pid_file"]).read())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), f"pid {pid} gone", 10)
    result = call(broker, "monitor", **MONITOR)
    assert result.returncode == 7
    assert "died" in exit_reason(result)
    assert call(broker, "stop").returncode == 0
    assert call(broker, "start").returncode == 0
    assert "made-by-hand" in [v["name"] for v in ctl(broker, "list_vhosts")]


def test_wrong_monitoring_credentials_are_5_without_the_password(broker):
    _, _, params, _ = broker
    assert call(broker, "start").returncode == 0
    wrong = os.urandom(8).hex()
    with open(params["monitor_credentials"], "w") as handle:
        handle.write(f"username=stackha-monitor\npassword={wrong}\n")
    result = call(broker, "monitor", **MONITOR)
    assert result.returncode == 5  # this node's file: Pacemaker stops this instance, not the clone
    assert "refused user stackha-monitor" in exit_reason(result)
    assert wrong not in result.stderr


def test_a_policy_rabbitmq_refuses_fails_start_with_6_naming_it(broker):
    bad = json.dumps([{"name": "broken", "pattern": ".*", "definition": {"max-length": "a"}}])
    result = call(broker, "start", OCF_RESKEY_policies=bad)
    assert result.returncode == 6
    assert "policy 'broken' refused by RabbitMQ" in exit_reason(result)
    assert "not a valid maximum length" in exit_reason(result)
    assert call(broker, "monitor", **PROBE).returncode == 7  # nothing left running


@pytest.mark.parametrize(
    ("override", "code", "reason"),
    [
        ({"OCF_RESKEY_policies": "[{"}, 6, "parameter policies: is not JSON"),
        ({"OCF_RESKEY_nodename": "rabbit@no-such-host.invalid"}, 6, "does not resolve"),
        ({"OCF_RESKEY_monitor_credentials": "/nonexistent/creds"}, 5, "/nonexistent/creds"),
        ({"OCF_RESKEY_home": "/nonexistent"}, 5, "Erlang cookie /nonexistent/.erlang.cookie"),
        ({"OCF_RESKEY_partition_handling": "sometimes"}, 6, "partition_handling"),
        (
            {"OCF_RESKEY_users": '[{"name": "x", "password_file": "/nonexistent/pw"}]'},
            5,
            "password file /nonexistent/pw",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_starts(broker, override, code, reason):
    for action in ("validate-all", "start"):
        result = call(broker, action, **override)
        assert result.returncode == code, result.stderr
        assert reason in exit_reason(result)
        assert "Traceback" not in result.stderr
    assert call(broker, "monitor", **PROBE).returncode == 7
