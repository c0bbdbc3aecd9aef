"""ocf:stackha:galera against a real one-member MariaDB Galera on loopback, outside Pacemaker
(standalone: its attributes in a file): bootstrap, monitor, a crash recovered with its position,
stop, probe, and bad input."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

import pytest
from agent_runs import BASE_ENV, exit_reason, run_agent
from mariadb_sandbox import one_member_galera

INSTANCE = "integration-galera"


@pytest.fixture
def galera(installed, tmp_path):
    params = one_member_galera(tmp_path)
    env = {
        **BASE_ENV,
        "OCF_RESOURCE_INSTANCE": INSTANCE,
        "HA_RSCTMP": str(tmp_path / "rsctmp"),
        **{f"OCF_RESKEY_{key}": value for key, value in params.items()},
    }
    agent = installed / "galera"
    yield agent, env, params
    run_agent(agent, "stop", env)


def call(galera, action, **extra):
    agent, env, _ = galera
    return run_agent(agent, action, {**env, **extra}, timeout=180)


def sql(params, statement):
    return subprocess.run(
        ["mariadb", f"--socket={params['socket']}", "-N", "-B", "-e", statement],
        capture_output=True,
        text=True,
        timeout=30,
    )


PROMOTED_MONITOR = {"OCF_RESKEY_CRM_meta_interval": "10000", "OCF_RESKEY_CRM_meta_role": "Promoted"}
PROBE = {"OCF_RESKEY_CRM_meta_interval": "0"}


def test_bootstrap_monitor_stop_and_probe(galera):
    _, _, params = galera
    assert call(galera, "monitor", **PROBE).returncode == 7
    assert call(galera, "start").returncode == 0
    assert call(galera, "monitor", **PROBE).returncode == 0  # Unpromoted: stopped, reported
    assert not os.path.exists(params["pid"])
    result = call(galera, "promote")
    assert result.returncode == 0, result.stderr
    assert "bootstrap: cluster status Primary, state Synced" in result.stderr
    assert call(galera, "monitor", **PROMOTED_MONITOR).returncode == 8
    assert call(galera, "monitor", **PROBE).returncode == 8
    assert sql(params, "CREATE DATABASE kept").returncode == 0
    assert call(galera, "demote").returncode == 0
    assert call(galera, "stop").returncode == 0
    assert call(galera, "monitor", **PROBE).returncode == 7


def test_after_a_crash_the_node_starts_from_its_recovered_position(galera):
    _, _, params = galera
    assert call(galera, "start").returncode == 0
    assert call(galera, "promote").returncode == 0
    sql(params, "CREATE DATABASE t; CREATE TABLE t.r (id INT PRIMARY KEY)")
    assert sql(params, "INSERT INTO t.r VALUES (1),(2),(3)").returncode == 0
    before = sql(params, "SHOW STATUS LIKE 'wsrep_last_committed'").stdout.split()[-1]
    pid = int(open(params["pid"]).read())
    os.kill(pid, signal.SIGKILL)  # our own mariadbd, by pid
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.1)
    grastate = open(f"{params['datadir']}/grastate.dat").read()
    assert "seqno:   -1" in grastate
    assert call(galera, "monitor", **PROMOTED_MONITOR).returncode == 7
    assert call(galera, "demote").returncode == 0
    started = call(galera, "start")
    assert started.returncode == 0
    assert f":{before} with --wsrep-recover" in started.stderr
    promoted = call(galera, "promote")
    assert promoted.returncode == 0, promoted.stderr
    status = sql(params, "SHOW STATUS LIKE 'wsrep_last_committed'").stdout.split()[-1]
    assert int(status) >= int(before)  # the position went on, it did not start again at 0
    assert sql(params, "SELECT COUNT(*) FROM t.r").stdout.strip() == "3"


def test_a_member_out_of_the_primary_component_is_a_failed_promoted_instance(galera):
    _, _, params = galera
    assert call(galera, "start").returncode == 0
    assert call(galera, "promote").returncode == 0
    # An empty address is Galera's own way to leave the cluster without stopping mariadbd.
    assert sql(params, "SET GLOBAL wsrep_cluster_address=''").returncode == 0
    monitored = call(galera, "monitor", **PROMOTED_MONITOR)
    assert monitored.returncode == 9, monitored.stderr
    assert exit_reason(monitored).startswith(
        "not in the Primary Component: cluster status Disconnected"
    )


@pytest.mark.parametrize(
    ("change", "code", "reason"),
    [
        ({"wsrep_cluster_address": "node1,node2"}, 6, "is not a gcomm:// address"),
        ({"datadir": "/nonexistent/mysql"}, 5, "datadir /nonexistent/mysql does not exist"),
        ({"wsrep_provider": "/usr/lib/galera/missing.so"}, 5, "Galera library"),
        ({"check_credentials": "/nonexistent/galera.cnf"}, 5, "/nonexistent/galera.cnf"),
        ({"cluster_host_map": ""}, 5, "is not in wsrep_cluster_address"),
    ],
)
def test_bad_input_is_refused_with_a_reason_naming_it(galera, change, code, reason):
    extra = {f"OCF_RESKEY_{key}": value for key, value in change.items()}
    for action in ("validate-all", "start"):
        result = call(galera, action, **extra)
        assert result.returncode == code, (action, result.stderr)
        assert reason in exit_reason(result), exit_reason(result)
        assert "Traceback" not in result.stderr


def test_an_uninitialised_datadir_is_refused_and_left_alone(galera, tmp_path):
    empty = tmp_path / "empty-datadir"
    empty.mkdir()
    result = call(galera, "start", OCF_RESKEY_datadir=str(empty))
    assert result.returncode == 5
    assert "is not initialised" in exit_reason(result)
    assert list(empty.iterdir()) == []


def test_wrong_credentials_are_a_configuration_error_naming_the_file(galera, tmp_path):
    _, _, params = galera
    assert call(galera, "start").returncode == 0
    assert call(galera, "promote").returncode == 0
    credentials = tmp_path / "monitor.cnf"
    password = secrets.token_hex(8)
    credentials.write_text(f"[client]\nuser=nobody-here\npassword={password}\n")
    credentials.chmod(0o600)
    result = call(
        galera, "monitor", OCF_RESKEY_check_credentials=str(credentials), **PROMOTED_MONITOR
    )
    assert result.returncode == 6, result.stderr
    assert f"credentials from {credentials}" in exit_reason(result)
    assert password not in result.stderr  # the password itself is never echoed


def test_under_pacemaker_it_must_be_a_promotable_clone(galera):
    result = call(galera, "start", OCF_RESKEY_crm_feature_set="3.16.1")
    assert result.returncode == 6, result.stderr
    assert exit_reason(result) == (
        "galera must run as a promotable clone (pcs: promotable promoted-max=N)"
    )
