"""``stonith_admin --history``: whether Pacemaker has just fenced a node."""

import calendar

import pytest
from stackha.pacemaker import stonith_admin

TOOL = "/usr/sbin/stonith_admin"
# 2026-11-25 10:43:07 UTC
FENCED_AT = float(calendar.timegm((2026, 11, 25, 10, 43, 7, 0, 0, 0)))


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25 10:43:07Z",
        "2026-11-25T10:43:07Z",
        "2026-11-25 10:43:07.123456Z",
        "2026-11-25 11:43:07 +01:00",
        "2026-11-25 11:43:07.5 +01:00",
        "2026-11-25 11:43:07 +0100",
        "2026-11-25 05:43:07 -05:00",
    ],
)
def test_a_completion_time_with_a_zone_is_read_as_unix_time(text):
    assert stonith_admin.parse_completed(text) == FENCED_AT


def test_a_completion_time_without_a_zone_is_local_time():
    import time

    expected = time.mktime((2026, 11, 25, 10, 43, 7, 0, 0, -1))
    assert stonith_admin.parse_completed("2026-11-25 10:43:07") == expected


@pytest.mark.parametrize("text", ["", "yesterday", "25/11/2026 10:43:07", "2026-11-25"])
def test_a_completion_time_that_cannot_be_read_is_none(text):
    assert stonith_admin.parse_completed(text) is None


def history(*events):
    """``stonith_admin --history NODE --output-as=xml`` of Pacemaker 2.1, with ``events`` as
    (target, action, status, completed)."""
    lines = "".join(
        f'    <fence_event status="{status}" action="{action}" target="{target}" '
        f'client="pacemaker-controld.1203" origin="node1" delegate="node2" '
        f'completed="{completed}"/>\n'
        for target, action, status, completed in events
    )
    return (
        '<pacemaker-result api-version="2.25" request="stonith_admin --history node3 '
        '--output-as=xml">\n'
        f'  <fence_history status="0">\n{lines}  </fence_history>\n'
        '  <status code="0" message="OK"/>\n'
        "</pacemaker-result>\n"
    )


def test_the_last_success_is_the_newest_successful_off_or_reboot_of_that_node():
    xml = history(
        ("node3", "reboot", "success", "2026-11-25 09:00:00Z"),
        ("node3", "off", "success", "2026-11-25 10:43:07Z"),
        ("node3", "reboot", "success", "2026-11-25 10:00:00Z"),
    )
    assert stonith_admin.last_success(xml, "node3") == FENCED_AT


def test_failed_fencing_other_actions_and_other_nodes_do_not_count():
    xml = history(
        ("node3", "reboot", "success", "2026-11-25 09:00:00Z"),
        ("node3", "reboot", "failed", "2026-11-25 10:50:00Z"),
        ("node3", "on", "success", "2026-11-25 10:55:00Z"),
        ("node2", "reboot", "success", "2026-11-25 11:00:00Z"),
    )
    assert stonith_admin.last_success(xml, "node3") == stonith_admin.parse_completed(
        "2026-11-25 09:00:00Z"
    )


def test_a_node_never_fenced_has_no_last_success():
    assert stonith_admin.last_success(history(), "node3") is None
    xml = history(("node2", "reboot", "success", "2026-11-25 10:43:07Z"))
    assert stonith_admin.last_success(xml, "node3") is None


def expect_history(fake_runner, xml, returncode=0):
    fake_runner.expect(
        [TOOL, "--history", "node3", "--output-as=xml"], returncode=returncode, stdout=xml
    )


FENCED = history(("node3", "reboot", "success", "2026-11-25 10:43:07Z"))


def test_a_node_fenced_minutes_ago_was_fenced_recently(fake_runner):
    expect_history(fake_runner, FENCED)
    assert stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT + 120, timeout=10)


def test_a_node_fenced_exactly_900_seconds_ago_still_counts(fake_runner):
    expect_history(fake_runner, FENCED)
    assert stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT + 900, timeout=10)


def test_a_node_fenced_longer_ago_was_not_fenced_recently(fake_runner):
    expect_history(fake_runner, FENCED)
    assert not stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT + 901, timeout=10)


def test_a_node_never_fenced_was_not_fenced_recently(fake_runner):
    expect_history(fake_runner, history())
    assert not stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT, timeout=10)


def test_when_stonith_admin_fails_the_node_was_not_fenced_recently(fake_runner):
    expect_history(fake_runner, "", returncode=102)
    assert not stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT, timeout=10)


def test_when_stonith_admin_prints_no_xml_the_node_was_not_fenced_recently(fake_runner):
    expect_history(fake_runner, "Could not connect to fencer: Transport endpoint")
    assert not stonith_admin.fenced_recently(fake_runner, "node3", now=FENCED_AT, timeout=10)
