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


def test_crm_verify_lines_of_pacemaker_2_1_and_3_0_read_alike():
    """2.1.5 prefixes each line with the logging function and closes with 'crm_verify: …';
    3.0.0 mostly prints a bare level and closes with 'Configuration invalid (with …)'. Both
    give the same findings, without prefixes and without the summary."""
    from stackha.pacemaker.crm_verify import parse_output

    old = (
        "(unpack_config) \twarning: Fencing and resource management disabled due to lack of "
        "quorum\n(schedule_fencing_and_shutdowns) \twarning: Node ctl1 is unclean but cannot be "
        "fenced\n(unpack_resources) \terror: Resource start-up disabled since no STONITH "
        "resources have been defined\ncrm_verify: Errors found during check: config not valid\n"
        "-V may provide more details\n"
    )
    new = (
        "(cluster_status) \twarning: Fencing and resource management disabled due to lack of "
        "quorum\nwarning: Node ctl1 is unclean but cannot be fenced\nerror: Resource start-up "
        "disabled since no STONITH resources have been defined\nConfiguration invalid (with "
        "errors)\n"
    )
    for stderr in (old, new):
        findings = parse_output(stderr, "", 78)
        assert findings.errors == (
            "Resource start-up disabled since no STONITH resources have been defined",
        )
        assert findings.warnings == (
            "Fencing and resource management disabled due to lack of quorum",
            "Node ctl1 is unclean but cannot be fenced",
        )
        assert findings.others == ()
