"""The wrappers run exactly the commands Pacemaker's tools expect."""

import pytest
from stackha.pacemaker import attrd_updater, crm_attribute
from stackha.runner import CommandError


def test_set_a_transient_node_attribute(fake_runner):
    fake_runner.expect(
        [
            "/usr/sbin/crm_attribute",
            "--lifetime",
            "reboot",
            "--name",
            "galera-seqno",
            "--update",
            "42",
            "--node",
            "n1",
        ]
    )
    crm_attribute.set_node(fake_runner, "galera-seqno", "42", node="n1")


def test_query_a_missing_attribute_is_none(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/crm_attribute", "--lifetime", "reboot", "--name", "x", "--query", "--quiet"],
        returncode=105,
        stderr="Error performing operation: No such device or address",
    )
    assert crm_attribute.get_node(fake_runner, "x") is None


def test_query_an_attribute(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/crm_attribute", "--lifetime", "forever", "--name", "x", "--query", "--quiet"],
        stdout="17\n",
    )
    assert crm_attribute.get_node(fake_runner, "x", lifetime="forever") == "17"


def test_a_failing_query_raises(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/crm_attribute", "--lifetime", "reboot", "--name", "x", "--query", "--quiet"],
        returncode=102,
        stderr="Could not connect to the CIB",
    )
    with pytest.raises(CommandError, match="Could not connect"):
        crm_attribute.get_node(fake_runner, "x")


def test_promotion_score(fake_runner):
    fake_runner.expect(["/usr/sbin/crm_attribute", "--promotion=galera", "--update", "100"])
    fake_runner.expect(
        ["/usr/sbin/crm_attribute", "--promotion=galera", "--delete", "--node", "n2"]
    )
    crm_attribute.set_promotion_score(fake_runner, "galera", 100)
    crm_attribute.delete_promotion_score(fake_runner, "galera", node="n2")


def test_private_attrd_attribute(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/attrd_updater", "--name", "rmq-start", "--update", "a b", "--private"]
    )
    fake_runner.expect(
        ["/usr/sbin/attrd_updater", "--name", "rmq-start", "--query"],
        stdout='name="rmq-start" host="n1" value="a b"\n',
    )
    attrd_updater.update(fake_runner, "rmq-start", "a b", private=True)
    assert attrd_updater.query(fake_runner, "rmq-start") == "a b"


def test_private_attrd_attribute_that_does_not_exist(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/attrd_updater", "--name", "nope", "--query"],
        returncode=78,
        stderr="attrd_updater: Could not query value of nope: attribute does not exist",
    )
    assert attrd_updater.query(fake_runner, "nope") is None
