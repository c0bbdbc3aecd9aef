"""The database path through HAProxy: stackha-galera-check (HAProxy's external check of each
Galera node: up only when Synced in the Primary Component, as the galera agent sees it) and
the ``listen`` section that sends every connection to one node at a time."""

from __future__ import annotations

import io

import pytest
from stackha import galera_check
from stackha.services import galera, haproxy

UUID = "8d6a3f38-5c9e-11ef-9e1d-6f2c4d9a1b22"
SYNCED = (
    "wsrep_cluster_size\t3\nwsrep_cluster_state_uuid\t" + UUID + "\n"
    "wsrep_cluster_status\tPrimary\nwsrep_last_committed\t77\n"
    "wsrep_local_state\t4\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON\n"
)
DONOR = SYNCED.replace("state\t4", "state\t2").replace("Synced", "Donor/Desynced")
NON_PRIMARY = SYNCED.replace("Primary", "non-Primary").replace("ready\tON", "ready\tOFF")


def status_query(credentials, host="192.0.2.12", port=3306, timeout="1"):
    return [
        "/usr/bin/mariadb",
        f"--defaults-extra-file={credentials}",
        f"--host={host}",
        f"--port={port}",
        "--protocol=TCP",
        f"--connect-timeout={timeout}",
        "--batch",
        "--skip-column-names",
        "--execute",
        galera.STATUS_QUERY,
    ]


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "check.cnf"
    path.write_text("[client]\nuser = stackha-check\npassword = secret\n")
    path.chmod(0o600)
    return str(path)


def run_check(fake_runner, credentials, *argv):
    err = io.StringIO()
    code = galera_check.main(["stackha-galera-check", *argv], fake_runner, err, credentials)
    return code, err.getvalue()


def test_only_a_synced_member_of_the_primary_component_takes_writes():
    assert galera.parse_status(SYNCED).takes_writes
    donor = galera.parse_status(DONOR)
    assert donor.serving and not donor.takes_writes  # Promoted, but busy with a transfer
    assert not galera.parse_status(NON_PRIMARY).takes_writes


def test_a_synced_primary_node_is_up_for_haproxy(fake_runner, credentials):
    fake_runner.expect(status_query(credentials), stdout=SYNCED)
    code = run_check(fake_runner, credentials, "192.0.2.98", "3306", "192.0.2.12", "3306")
    assert code == (0, "")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (DONOR, "cluster status Primary, state Donor/Desynced"),
        (NON_PRIMARY, "cluster status non-Primary"),
    ],
)
def test_a_donor_or_a_node_out_of_the_primary_component_is_down(
    fake_runner, credentials, answer, why
):
    fake_runner.expect(status_query(credentials), stdout=answer)
    code, said = run_check(fake_runner, credentials, "192.0.2.98", "3306", "192.0.2.12", "3306")
    assert code == 1 and f"down: 192.0.2.12:3306: {why}" in said


def test_a_node_that_does_not_answer_or_refuses_the_check_user_is_down(fake_runner, credentials):
    fake_runner.expect(
        status_query(credentials),
        returncode=1,
        stderr="ERROR 2002 (HY000): Can't connect to server on '192.0.2.12' (115)",
    )
    fake_runner.expect(
        status_query(credentials),
        returncode=1,
        stderr="ERROR 1045 (28000): Access denied for user 'stackha-check'@'192.0.2.11'",
    )
    code, said = run_check(fake_runner, credentials, "-", "-", "192.0.2.12", "3306")
    assert code == 1 and "192.0.2.12:3306 does not answer: ERROR 2002" in said
    code, said = run_check(fake_runner, credentials, "-", "-", "192.0.2.12", "3306")
    assert code == 1 and f"192.0.2.12:3306 refused {credentials}: ERROR 1045" in said
    assert "secret" not in said


def test_without_readable_credentials_it_says_so_and_runs_nothing(fake_runner):
    code, said = run_check(fake_runner, "/nonexistent/check.cnf", "-", "-", "192.0.2.12", "3306")
    assert code == 1 and "cannot read the check's credentials /nonexistent/check.cnf" in said


def test_a_bad_command_line_is_exit_2(fake_runner, credentials):
    assert run_check(fake_runner, credentials, "192.0.2.12")[0] == 2
    assert run_check(fake_runner, credentials, "-", "-", "192.0.2.12", "mysql")[0] == 2


def test_one_writer_the_others_backup_with_the_galera_check_and_sessions_cut_on_down():
    servers = [("node1", "192.0.2.11"), ("node2", "192.0.2.12"), ("node3", "192.0.2.13")]
    text = haproxy.galera_listen("192.0.2.98", servers, "/usr/bin/stackha-galera-check")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:2] == ["peers galera_writer", "peer stackha 127.0.0.1:13306"]
    assert "listen galera" in lines and "bind 192.0.2.98:3306" in lines
    assert "mode tcp" in lines and "option external-check" in lines
    assert "external-check command /usr/bin/stackha-galera-check" in lines
    assert "stick on dst" in lines and "stick-table type ip size 1m peers galera_writer" in lines
    assert "localpeer stackha" in haproxy.DATABASE_GLOBAL
    assert "retries 0" in lines
    assert (
        "default-server check inter 2s fall 2 rise 2 on-marked-down shutdown-sessions"
        " observe layer4 error-limit 1 on-error mark-down"
    ) in lines
    assert [line for line in lines if line.startswith("server ")] == [
        "server node1 192.0.2.11:3306",
        "server node2 192.0.2.12:3306 backup",
        "server node3 192.0.2.13:3306 backup",
    ]
    # the check program gives up before HAProxy's own timeout kills it
    assert "timeout check 2s" in lines and galera_check.TIMEOUT_S < 2
