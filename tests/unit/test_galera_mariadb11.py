"""The Galera service and stackha-galera-check on MariaDB 11.8 (Debian 13) as on 10.11 (Debian
12): the answers of both, captured from mariadbd 11.8.9 / 10.11.19 with galera 26.4.23, at the
runner boundary — stdout is the answer, stderr never is."""

from __future__ import annotations

import io
import re

import pytest
from stackha import galera_check
from stackha.runner import Result
from stackha.services import galera
from test_galera_check import status_query  # the check's exact query, as for 10.11

UUID = "2194dffe-efe3-11f1-938f-e3b57cc9b539"
SOCKET = "/run/mysqld/mysqld.sock"
# What MariaDB's own 11.x packages print first on stderr when a program runs by its old name
# (Debian 13 patches the notice out).
DEPRECATED = (
    "mysql: Deprecated program name. It will be removed in a future release, "
    "use '/usr/bin/mariadb' instead\n"
)
# SHOW STATUS LIKE 'wsrep_%' of a Synced 11.8.9 member of a cluster with a 10.11.19 one (the
# lines the agent reads, and some around them, in the server's order).
STATUS_11_8 = f"""wsrep_local_state_uuid\t{UUID}
wsrep_protocol_version\t11
wsrep_last_committed\t7
wsrep_local_state\t4
wsrep_local_state_comment\tSynced
wsrep_incoming_addresses\tAUTO,AUTO
wsrep_cluster_weight\t2
wsrep_checkpoint_position\t{UUID}:7
wsrep_se_checkpoint\t{UUID}:7 0-1-4
wsrep_cluster_capabilities\t
wsrep_cluster_conf_id\t2
wsrep_cluster_size\t2
wsrep_cluster_state_uuid\t{UUID}
wsrep_cluster_status\tPrimary
wsrep_connected\tON
wsrep_local_index\t1
wsrep_provider_name\tGalera
wsrep_provider_version\t4.23(rXXXX)
wsrep_ready\tON
"""
# The same 11.8.9 node while it joins: no cluster yet, its index the unsigned -1.
JOINING_11_8 = f"""wsrep_local_state_uuid\t{UUID}
wsrep_protocol_version\t-1
wsrep_last_committed\t7
wsrep_local_state\t1
wsrep_local_state_comment\tJoining: receiving State Transfer
wsrep_cluster_conf_id\t-1
wsrep_cluster_size\t0
wsrep_cluster_state_uuid\t
wsrep_cluster_status\tnon-Primary
wsrep_local_index\t18446744073709551615
wsrep_ready\tOFF
"""
QUERY = [
    f"--socket={SOCKET}",
    "--connect-timeout=5",
    "--batch",
    "--skip-column-names",
    "--execute",
    galera.STATUS_QUERY,
]


def test_an_11_8_synced_member_serves_and_takes_writes():
    status = galera.parse_status(STATUS_11_8)
    assert status.takes_writes
    assert (status.size, status.uuid, status.last_committed) == (2, UUID, 7)


def test_an_11_8_joiner_is_not_serving_and_its_unsigned_index_breaks_nothing():
    status = galera.parse_status(JOINING_11_8)
    assert not status.serving
    assert status.describe() == (
        "cluster status non-Primary, state Joining: receiving State Transfer, 0 members, "
        "wsrep_ready OFF"
    )


def test_the_deprecation_notice_on_stderr_is_not_the_answer(fake_runner):
    """An operator's client_binary=/usr/bin/mysql from MariaDB's own 11.x packages: the
    notice goes to stderr, the answer to stdout, and the answer is what is parsed."""
    fake_runner.expect(["/usr/bin/mysql", *QUERY], stdout=STATUS_11_8, stderr=DEPRECATED)
    status = galera.query_status(fake_runner, "/usr/bin/mysql", SOCKET, None, 5)
    assert status.takes_writes


def test_refused_credentials_are_recognised_behind_the_deprecation_notice(fake_runner):
    fake_runner.expect(
        ["/usr/bin/mysql", "--defaults-extra-file=/etc/c.cnf", *QUERY],
        returncode=1,
        stderr=DEPRECATED + "ERROR 1045 (28000): Access denied for user 'monitor'@'localhost'\n",
    )
    with pytest.raises(galera.CredentialsError, match=r"ERROR 1045 \(28000\): Access denied"):
        galera.query_status(fake_runner, "/usr/bin/mysql", SOCKET, "/etc/c.cnf", 5)


def test_a_failure_that_only_printed_the_notice_is_not_explained_by_it(fake_runner):
    fake_runner.expect(["/usr/bin/mysql", *QUERY], returncode=1, stderr=DEPRECATED)
    with pytest.raises(galera.NotReachable) as raised:
        galera.query_status(fake_runner, "/usr/bin/mysql", SOCKET, None, 5)
    assert str(raised.value) == f"mariadbd does not answer on {SOCKET}: exit status 1"


# -- mariadbd --wsrep-recover -------------------------------------------------------------------

# The log of mariadbd 11.8.9 --wsrep-recover after a kill -9 (lines shortened).
RECOVER_LOG_11_8 = (
    "2026-12-04 13:03:50 0 [Note] Starting MariaDB 11.8.9-MariaDB-0+deb13u1 from Debian source "
    "revision bf9193a939f515e95dd8def1a5468088c91cede6 as process 29383\n"
    "2026-12-04 13:03:51 0 [Note] InnoDB: End of log at LSN=54520\n"
    "2026-12-04 13:03:51 0 [Note] InnoDB: Upgrading the change buffer\n"
    "2026-12-04 13:03:51 0 [Warning] InnoDB: Skipping buffer pool dump/restore during wsrep "
    "recovery.\n"
    "2026-12-04 13:03:51 0 [Note] Plugin 'FEEDBACK' is disabled.\n"
    f"2026-12-04 13:03:52 0 [Note] WSREP: Recovered position: {UUID}:9\n"
)
# What the same run put on stderr: the last line is a note, not a reason.
RECOVER_STDERR_11_8 = (
    "2026-12-04 13:03:50 0 [Warning] Could not increase number of max_open_files to more "
    "than 20000 (request: 32184)\n"
    "2026-12-04 13:03:51 0 [Note] slave_connections_needed_for_purge changed to 0 because of "
    "Galera. Change it to 1 or higher if this Galera node is also Master in a normal "
    "replication setup\n"
)


def test_the_11_8_recover_log_is_read_for_its_position_line_not_its_first():
    assert galera.parse_recovered_position(RECOVER_LOG_11_8) == (UUID, 9)


def test_a_gtid_suffix_and_a_normal_starts_storage_line_are_told_apart():
    """With wsrep_gtid_mode the position line carries ",domain-server-seqno"; a normal
    start's "Recovered position from storage" (the joiner's log) is not the answer."""
    log = (
        f"2026-12-04 13:03:49 0 [Note] WSREP: Recovered position from storage: {UUID}:5\n"
        f"2026-12-04 13:03:52 0 [Note] WSREP: Recovered position: {UUID}:9,0-1-4\n"
    )
    assert galera.parse_recovered_position(log) == (UUID, 9)
    with pytest.raises(galera.GaleraError, match="reported no position"):
        galera.parse_recovered_position(log.splitlines()[0])


class RecoverRunner:
    """``mariadbd --wsrep-recover`` with its exact options; the log it writes to the private
    --log-error file the service chose (a fresh name: the one option matched by pattern)."""

    def __init__(self, log: str, returncode: int = 0, stderr: str = "") -> None:
        self.log, self.returncode, self.stderr = log, returncode, stderr
        self.argv: list[str] = []

    def run(self, argv, *, timeout, **_):
        self.argv = list(argv)
        (log_option,) = [a for a in argv if a.startswith("--log-error=")]
        path = log_option.split("=", 1)[1]
        with open(path, "w") as handle:
            handle.write(self.log)
        return Result(tuple(argv), self.returncode, "", self.stderr)


def recover(tmp_path, runner):
    return galera.recover_position(
        runner,
        "/usr/sbin/mariadbd",
        "/etc/mysql/my.cnf",
        str(tmp_path),
        "root",
        "/usr/lib/galera/libgalera_smm.so",
        "gcomm://a,b,c",
        SOCKET,
        timeout=60,
    )


def test_recover_runs_mariadbd_by_its_name_and_reads_the_position_from_its_log(tmp_path):
    runner = RecoverRunner(RECOVER_LOG_11_8, stderr=RECOVER_STDERR_11_8)
    assert recover(tmp_path, runner) == (UUID, 9)
    log = next(a.split("=", 1)[1] for a in runner.argv if a.startswith("--log-error="))
    assert re.fullmatch(rf"{tmp_path}/wsrep-recover\.\w+\.log", log)
    assert runner.argv == [
        "/usr/sbin/mariadbd",
        "--defaults-file=/etc/mysql/my.cnf",
        "--user=root",
        f"--datadir={tmp_path}",
        f"--log-error={log}",
        "--wsrep-on=ON",
        "--wsrep-provider=/usr/lib/galera/libgalera_smm.so",
        "--wsrep-cluster-address=gcomm://a,b,c",
        "--skip-networking",
        f"--socket={SOCKET}",
        f"--pid-file={log}.pid",
        "--wsrep-recover",
    ]
    assert list(tmp_path.iterdir()) == []  # its private log is gone


def test_a_failed_recovery_names_mariadbds_error_not_its_last_note(tmp_path):
    log = RECOVER_LOG_11_8.rsplit("\n", 2)[0] + (
        "\n2026-12-04 13:03:52 0 [ERROR] InnoDB: Plugin initialization aborted with error "
        "Data structure corruption\n"
    )
    runner = RecoverRunner(log, returncode=1, stderr=RECOVER_STDERR_11_8)
    with pytest.raises(galera.GaleraError) as raised:
        recover(tmp_path, runner)
    assert str(raised.value) == (
        f"mariadbd --wsrep-recover found no position in {tmp_path}: InnoDB: Plugin "
        "initialization aborted with error Data structure corruption"
    )
    runner = RecoverRunner("", returncode=1, stderr=RECOVER_STDERR_11_8)
    with pytest.raises(galera.GaleraError, match=f"no position in {tmp_path}: exit 1$"):
        recover(tmp_path, runner)


# -- grastate.dat, as galera 26.4.23 writes it on both releases ----------------------------------


def test_grastate_of_galera_26_4_23_parses_as_before():
    # after a clean stop on Debian 12 (a trailing blank after the last line), and after a
    # crash on Debian 13
    clean = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   9\nsafe_to_bootstrap: 0\n "
    )
    crashed = (
        f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID}\nseqno:   -1\nsafe_to_bootstrap: 0\n"
    )
    assert galera.parse_grastate(clean) == galera.GraState(UUID, 9, False)
    assert galera.parse_grastate(crashed).needs_recovery


# -- the installed version, and members of another release series --------------------------------

VERSION_11_8 = (
    "/usr/sbin/mariadbd  Ver 11.8.9-MariaDB-0+deb13u1 from Debian for debian-linux-gnu on "
    "x86_64 (-- Please help get to 10k stars at https://github.com/MariaDB/Server)\n"
)
VERSION_10_11 = (
    "/usr/sbin/mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 "
    "(Debian 12)\n"
)


@pytest.mark.parametrize(
    ("stdout", "version"), [(VERSION_11_8, "11.8.9"), (VERSION_10_11, "10.11.19")]
)
def test_the_installed_version_is_read_from_stdout(fake_runner, stdout, version):
    fake_runner.expect(
        ["/usr/sbin/mysqld", "--version"],
        stdout=stdout,
        stderr=DEPRECATED.replace("mysql:", "mysqld:").replace("bin/mariadb'", "sbin/mariadbd'"),
    )
    assert galera.installed_version(fake_runner, "/usr/sbin/mysqld", 5) == version


def test_a_version_only_on_stderr_is_no_version(fake_runner):
    fake_runner.expect(["/usr/sbin/mariadbd", "--version"], stderr=VERSION_11_8)
    with pytest.raises(galera.GaleraError, match="not a MariaDB version"):
        galera.installed_version(fake_runner, "/usr/sbin/mariadbd", 5)


def test_members_one_release_series_apart_may_run_together_two_may_not():
    assert galera.version_mismatch("11.4.5", {"node2": "10.11.19", "node3": "11.8.9"}) == ""
    assert galera.version_mismatch("11.8.9", {"node2": "11.8.3"}) == ""
    assert galera.version_mismatch("11.2.1", {"node2": "10.11.19"}) == ""  # not judged
    assert galera.version_mismatch("11.8.9", {"node2": "10.11.19", "node3": "11.8.9"}) == (
        "MariaDB 11.8 here, 10.11 on node2: Galera mixes only adjacent release series "
        "(10.11, 11.4, 11.8, 12.3); upgrade the rest first, or every node with the "
        "cluster stopped (docs/upgrade.md)"
    )
    three = galera.version_mismatch(
        "10.11.19", {"node1": "11.8.9", "node2": "12.3.1", "n3": "11.8.2"}
    )
    assert three.startswith("MariaDB 10.11 here, 11.8 on n3, node1 and 12.3 on node2: ")


# -- stackha-galera-check with an 11.x client ---------------------------------------------------


@pytest.fixture
def credentials(tmp_path):
    path = tmp_path / "check.cnf"
    path.write_text("[client]\nuser = stackha-check\npassword = secret\n")
    path.chmod(0o600)
    return str(path)


def test_the_check_of_an_11_8_node_is_up(fake_runner, credentials):
    fake_runner.expect(status_query(credentials), stdout=STATUS_11_8)
    err = io.StringIO()
    argv = ["stackha-galera-check", "-", "-", "192.0.2.12", "3306"]
    assert galera_check.main(argv, fake_runner, err, credentials) == 0
    assert err.getvalue() == ""


def test_an_11_x_client_refused_by_a_10_11_server_without_tls_says_what_to_set(
    fake_runner, credentials
):
    """MariaDB 11.4+ clients verify the server's certificate by default; a 10.11 server
    offers no TLS: the check says so, and where the setting goes."""
    fake_runner.expect(
        status_query(credentials),
        returncode=1,
        stderr="ERROR 2026 (HY000): TLS/SSL error: SSL is required, but the server does not "
        "support it\n",
    )
    err = io.StringIO()
    argv = ["stackha-galera-check", "-", "-", "192.0.2.12", "3306"]
    assert galera_check.main(argv, fake_runner, err, credentials) == 1
    assert err.getvalue() == (
        "stackha-galera-check: down: mariadbd at 192.0.2.12:3306: ERROR 2026 (HY000): TLS/SSL "
        "error: SSL is required, but the server does not support it (a MariaDB 11.4 or newer "
        "client verifies the server's TLS certificate by default; for a 10.x server, configure "
        f"ssl-ca or ssl-verify-server-cert=off in {credentials}: docs/upgrade.md)\n"
    )
