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
