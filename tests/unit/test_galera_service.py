"""Galera knowledge without OCF: positions, members, and the bootstrap election."""

import pytest
from stackha.services.galera import (
    NIL_UUID,
    GaleraError,
    Report,
    cluster_members,
    elect_bootstrap,
    is_member,
    parse_grastate,
    parse_recovered_position,
    read_grastate,
)

UUID = "8d6a3f38-5c9e-11ef-9e1d-6f2c4d9a1b22"
GRASTATE = f"""# GALERA saved state
version: 2.1
uuid:    {UUID}
seqno:   1234
safe_to_bootstrap: 1
"""


def test_grastate_after_a_clean_stop():
    state = parse_grastate(GRASTATE)
    assert (state.uuid, state.seqno, state.safe_to_bootstrap) == (UUID, 1234, True)
    assert not state.needs_recovery


def test_grastate_after_a_crash_needs_recovery():
    state = parse_grastate(GRASTATE.replace("1234", "-1").replace("bootstrap: 1", "bootstrap: 0"))
    assert state.needs_recovery and not state.safe_to_bootstrap


def test_a_damaged_grastate_is_refused_not_guessed():
    with pytest.raises(GaleraError, match="no valid uuid and seqno"):
        parse_grastate("version: 2.1\nseqno: banana\n")


def test_a_missing_grastate_is_a_node_that_never_started(tmp_path):
    assert read_grastate(str(tmp_path)) is None
    (tmp_path / "grastate.dat").write_text(GRASTATE)
    assert read_grastate(str(tmp_path)).seqno == 1234


def test_recovered_position_from_the_wsrep_recover_log():
    log = (
        "2026-11-24 10:00:00 0 [Note] InnoDB: Starting crash recovery.\n"
        f"2026-11-24 10:00:01 0 [Note] WSREP: Recovered position: {UUID}:1240\n"
    )
    assert parse_recovered_position(log) == (UUID, 1240)
    with pytest.raises(GaleraError, match="reported no position"):
        parse_recovered_position("[ERROR] InnoDB: corrupt\n")


def test_members_are_matched_exactly():
    """resource-agents greps the address: node1 "is in" gcomm://node10,node11. Not here."""
    address = "gcomm://node10,node11:4567,[fd00::3]:4567,node12?pc.wait_prim=no"
    assert cluster_members(address) == ["node10", "node11", "fd00::3", "node12"]
    assert not is_member("node1", address)
    assert is_member("node11", address)
    with pytest.raises(GaleraError, match="not a gcomm:// address"):
        cluster_members("node1,node2")


MEMBERS = ["node1", "node2", "node3"]


def test_the_highest_seqno_bootstraps_once_everyone_reported():
    election = elect_bootstrap(
        MEMBERS,
        {
            "node1": Report(10, uuid=UUID),
            "node2": Report(12, uuid=UUID),
            "node3": Report(11, uuid=UUID),
        },
    )
    assert election.bootstrap == "node2"


def test_nobody_bootstraps_while_a_member_is_silent():
    election = elect_bootstrap(
        MEMBERS, {"node1": Report(10, uuid=UUID), "node2": Report(12, uuid=UUID)}
    )
    assert election.bootstrap is None and election.waiting_for == ("node3",)


def test_a_quorum_suffices_only_when_allowed_and_the_silent_member_is_fenced():
    reports = {"node1": Report(10, uuid=UUID), "node2": Report(12, uuid=UUID)}
    assert elect_bootstrap(MEMBERS, reports, allow_quorum=True).bootstrap is None
    assert elect_bootstrap(MEMBERS, reports, fenced={"node3"}).bootstrap is None
    assert (
        elect_bootstrap(MEMBERS, reports, fenced={"node3"}, allow_quorum=True).bootstrap == "node2"
    )
    lonely = {"node1": Report(10, uuid=UUID)}
    assert (
        elect_bootstrap(MEMBERS, lonely, fenced={"node2", "node3"}, allow_quorum=True).bootstrap
        is None
    )  # 1 of 3 is no quorum


def test_a_two_node_cluster_recovers_with_one_node_when_the_other_is_fenced():
    pair = ["node1", "node2"]
    alone = {"node2": Report(7, uuid=UUID)}
    assert elect_bootstrap(pair, alone).bootstrap is None
    assert elect_bootstrap(pair, alone, allow_quorum=True).bootstrap is None  # not fenced
    assert elect_bootstrap(pair, alone, fenced={"node1"}, allow_quorum=True).bootstrap == "node2"


def test_safe_to_bootstrap_wins_without_waiting():
    election = elect_bootstrap(MEMBERS, {"node3": Report(12, safe_to_bootstrap=True, uuid=UUID)})
    assert election.bootstrap == "node3"
    assert "safe_to_bootstrap" in election.reason


def test_equal_positions_are_broken_by_address_order_on_every_node():
    reports = {
        "node3": Report(12, uuid=UUID),
        "node2": Report(12, uuid=UUID),
        "node1": Report(11, uuid=UUID),
    }
    assert elect_bootstrap(MEMBERS, reports).bootstrap == "node2"
    assert elect_bootstrap(MEMBERS, dict(reversed(list(reports.items())))).bootstrap == "node2"


def test_an_unrecovered_position_holds_the_election():
    reports = {
        "node1": Report(-1, uuid=UUID),
        "node2": Report(12, uuid=UUID),
        "node3": Report(11, uuid=UUID),
    }
    election = elect_bootstrap(MEMBERS, reports)
    assert election.bootstrap is None and election.waiting_for == ("node1",)


def test_a_brand_new_cluster_bootstraps_on_the_first_member():
    fresh = {m: Report(-1, uuid=NIL_UUID) for m in MEMBERS}
    assert elect_bootstrap(MEMBERS, fresh).bootstrap == "node1"


def test_two_histories_are_never_merged_by_choice():
    other = "11111111-2222-3333-4444-555555555555"
    with pytest.raises(GaleraError, match="different cluster UUIDs"):
        elect_bootstrap(
            MEMBERS,
            {
                "node1": Report(10, uuid=UUID),
                "node2": Report(99, uuid=other),
                "node3": Report(5, uuid=UUID),
            },
        )


# -- positions, the grastate marker, status, the commands -------------------------------------

from stackha.services import galera  # noqa: E402

CRASHED_GRASTATE = f"""# GALERA saved state
version: 2.1
uuid:    {UUID}
seqno:   -1
safe_to_bootstrap: 0
"""


def test_positions_round_trip_and_garbage_is_refused():
    assert galera.parse_position(galera.position_text(UUID, 42)) == (UUID, 42)
    assert galera.parse_position(f"{NIL_UUID}:-1") == (NIL_UUID, -1)
    for text in ("", "42", f"{UUID}", f"{UUID}:x", "short:1"):
        with pytest.raises(GaleraError, match="not a Galera position"):
            galera.parse_position(text)


def test_mark_safe_to_bootstrap_changes_only_the_marker_and_leaves_no_copy(tmp_path):
    (tmp_path / "grastate.dat").write_text(CRASHED_GRASTATE)
    (tmp_path / "grastate.dat").chmod(0o660)
    galera.mark_safe_to_bootstrap(str(tmp_path))
    assert (tmp_path / "grastate.dat").read_text() == CRASHED_GRASTATE.replace(
        "safe_to_bootstrap: 0", "safe_to_bootstrap: 1"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grastate.dat"]
    assert (tmp_path / "grastate.dat").stat().st_mode & 0o777 == 0o660


def test_mark_safe_to_bootstrap_refuses_a_file_that_does_not_parse(tmp_path):
    (tmp_path / "grastate.dat").write_text("garbage\n")
    with pytest.raises(GaleraError):
        galera.mark_safe_to_bootstrap(str(tmp_path))
    assert (tmp_path / "grastate.dat").read_text() == "garbage\n"


def test_member_endpoints_and_host_map():
    assert galera.member_endpoints("gcomm://a,b:4600,c?pc.wait_prim=no") == {
        "a": 4567,
        "b": 4600,
        "c": 4567,
    }
    assert galera.parse_host_map("n1:10.0.0.1; n2:10.0.0.2") == {
        "n1": "10.0.0.1",
        "n2": "10.0.0.2",
    }
    with pytest.raises(GaleraError, match="not node:name"):
        galera.parse_host_map("n1")


STATUS = (
    "wsrep_cluster_size\t3\nwsrep_cluster_state_uuid\t" + UUID + "\n"
    "wsrep_cluster_status\tPrimary\nwsrep_last_committed\t77\n"
    "wsrep_local_state\t4\nwsrep_local_state_comment\tSynced\nwsrep_ready\tON\n"
)


def test_status_of_a_synced_member():
    status = galera.parse_status(STATUS)
    assert status.serving and status.primary and status.state == galera.SYNCED
    assert (status.size, status.uuid, status.last_committed) == (3, UUID, 77)


def test_a_non_primary_member_is_not_serving_and_says_why():
    status = galera.parse_status(
        STATUS.replace("Primary", "non-Primary").replace("ON", "OFF").replace("\t3\n", "\t1\n")
    )
    assert not status.serving
    assert status.describe() == (
        "cluster status non-Primary, state Synced, 1 member, wsrep_ready OFF"
    )


def test_no_wsrep_status_means_no_galera_provider():
    with pytest.raises(GaleraError, match="Galera provider"):
        galera.parse_status("")


QUERY = [
    "--socket=/run/mysqld/mysqld.sock",
    "--connect-timeout=5",
    "--batch",
    "--skip-column-names",
    "--execute",
    galera.STATUS_QUERY,
]


def test_query_status_takes_credentials_from_a_file_given_first(fake_runner):
    fake_runner.expect(
        ["/usr/bin/mariadb", "--defaults-extra-file=/etc/stackha/galera.cnf", *QUERY],
        stdout=STATUS,
    )
    status = galera.query_status(
        fake_runner, "/usr/bin/mariadb", "/run/mysqld/mysqld.sock", "/etc/stackha/galera.cnf", 5
    )
    assert status.serving


def test_refused_credentials_name_their_file(fake_runner):
    fake_runner.expect(
        ["/usr/bin/mariadb", "--defaults-extra-file=/etc/c.cnf", *QUERY],
        returncode=1,
        stderr="ERROR 1045 (28000): Access denied for user 'monitor'@'localhost'",
    )
    with pytest.raises(galera.CredentialsError, match="credentials from /etc/c.cnf"):
        galera.query_status(
            fake_runner, "/usr/bin/mariadb", "/run/mysqld/mysqld.sock", "/etc/c.cnf", 5
        )


def test_a_mariadbd_that_does_not_answer_is_not_reachable(fake_runner):
    fake_runner.expect(
        ["/usr/bin/mariadb", *QUERY],
        returncode=1,
        stderr="ERROR 2002 (HY000): Can't connect to local server through socket",
    )
    with pytest.raises(galera.NotReachable, match="does not answer"):
        galera.query_status(fake_runner, "/usr/bin/mariadb", "/run/mysqld/mysqld.sock", None, 5)


def test_mariadbd_argv_carries_the_recovered_position_and_the_bootstrap_flag():
    argv = galera.mariadbd_argv(
        "/usr/sbin/mariadbd",
        "/etc/mysql/my.cnf",
        "/var/lib/mysql",
        "mysql",
        "/run/mysqld/mysqld.pid",
        "/run/mysqld/mysqld.sock",
        "/var/log/mysql/error.log",
        "/usr/lib/galera/libgalera_smm.so",
        "gcomm://a,b,c",
        new_cluster=True,
        start_position=f"{UUID}:12",
    )
    assert argv[1] == "--defaults-file=/etc/mysql/my.cnf"  # mariadbd reads it only first
    assert f"--wsrep-start-position={UUID}:12" in argv
    assert argv[-1] == "--wsrep-new-cluster"
    assert not any("password" in arg for arg in argv)


def test_galera_port_open_tells_a_listening_port_from_a_closed_one():
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert galera.galera_port_open("127.0.0.1", port, timeout=1.0)
    assert not galera.galera_port_open("127.0.0.1", port, timeout=1.0)
