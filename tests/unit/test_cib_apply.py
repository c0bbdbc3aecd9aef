"""`stackha cib apply` against a fake runner: the schema checks refuse before anything is
changed, the merge keeps what belongs to the cluster, the diff shows real changes only, and a
configuration crm_verify rejects is never pushed. (The same against real Pacemaker tools on a
CIB file: tests/contract/test_cib_apply_contract.py.)"""

from __future__ import annotations

import io

import pytest
from stackha.cib.apply import (
    ApplyError,
    apply,
    cib_text,
    configuration_diff,
    merged_cib,
    newest_schema,
    pacemaker_release,
    parse_cib,
    property_value,
    schema_problem,
)
from stackha.pacemaker import cibadmin

QUERY = ["/usr/sbin/cibadmin", "--query"]
VERIFY = ["/usr/sbin/crm_verify", "--verbose", "--verbose", "--xml-pipe"]
REPLACE = ["/usr/sbin/cibadmin", "--replace", "--xml-pipe"]

LIVE = """<cib crm_feature_set="3.16.1" validate-with="{schema}" epoch="7" num_updates="3"
     admin_epoch="0" have-quorum="1" dc-uuid="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-have-watchdog" name="have-watchdog" value="false"/>
        <nvpair id="cib-bootstrap-options-dc-version" name="dc-version" value="{dc_version}"/>
        <nvpair id="cib-bootstrap-options-cluster-infrastructure"
                name="cluster-infrastructure" value="corosync"/>
        <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="openstack"/>
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="true"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1084751361" uname="ctl1">
        <instance_attributes id="nodes-1084751361">
          <nvpair id="nodes-1084751361-rack" name="rack" value="r1"/>
        </instance_attributes>
      </node>
      <node id="1084751362" uname="ctl2"/>
      <node id="1084751363" uname="ctl3"/>
    </nodes>
    <resources/>
    <constraints/>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-options-stickiness" name="resource-stickiness" value="100"/>
      </meta_attributes>
    </rsc_defaults>
    <alerts>
      <alert id="snmp" path="/usr/share/pacemaker/alerts/alert_snmp.sh"/>
    </alerts>
  </configuration>
  <status>
    <node_state id="1084751361" uname="ctl1" in_ccm="true" crmd="online" join="member"
                expected="member"/>
  </status>
</cib>
"""

VIP = """<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="vip-instance_attributes">
          <nvpair id="vip-ip" name="ip" value="192.0.2.10"/>
        </instance_attributes>
      </primitive>"""

NEW = """<cib validate-with="{schema}" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
        {properties}
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="ctl1"/>
      <node id="2" uname="ctl2"/>
      <node id="3" uname="ctl3"/>
    </nodes>
    <resources>{resources}</resources>
    <constraints/>
  </configuration>
  <status/>
</cib>
"""


def live(schema="pacemaker-3.9", dc_version="2.1.5-a3f44794f94"):
    return LIVE.format(schema=schema, dc_version=dc_version)


def new(schema="pacemaker-3.9", resources=VIP, properties=""):
    return NEW.format(schema=schema, resources=resources, properties=properties)


def cib(text):
    return parse_cib(text, "test CIB")


@pytest.fixture
def schemas(tmp_path):
    """A schema directory holding pacemaker-3.0 to pacemaker-3.10 (only their names matter)."""
    for minor in range(11):
        (tmp_path / f"pacemaker-3.{minor}.rng").write_text("")
    return tmp_path


def merged_text(live_text, new_text):
    return cib_text(merged_cib(cib(live_text), cib(new_text)))


def test_a_schema_newer_than_the_dc_accepts_is_refused_before_anything_changes(
    fake_runner, schemas
):
    """pacemaker-3.10 is installed here, but the DC runs 2.1.5: refused after the query alone."""
    fake_runner.expect(QUERY, stdout=live())
    with pytest.raises(ApplyError) as caught:
        apply(fake_runner, new("pacemaker-3.10"), schema_dir=schemas)
    assert caught.value.reason == (
        "the CIB is for schema pacemaker-3.10; this cluster's Pacemaker 2.1.5 accepts up to "
        "pacemaker-3.9: render it with --validate-with pacemaker-3.9"
    )


def test_a_schema_not_installed_here_is_refused_before_anything_changes(fake_runner, schemas):
    """A 2.1.8 DC would take pacemaker-3.10, but without its .rng here it cannot be checked."""
    (schemas / "pacemaker-3.10.rng").unlink()
    fake_runner.expect(QUERY, stdout=live(dc_version="2.1.8-3.el9-d6a0cc1"))
    with pytest.raises(ApplyError, match="does not have") as caught:
        apply(fake_runner, new("pacemaker-3.10"), schema_dir=schemas)
    assert str(schemas / "pacemaker-3.10.rng") in caught.value.reason
    assert caught.value.reason.endswith("render it with --validate-with pacemaker-3.9")


def test_a_schema_older_than_the_clusters_is_refused_before_anything_changes(fake_runner, schemas):
    """A CIB for pacemaker-3.7 would lower a cluster already at pacemaker-3.9."""
    fake_runner.expect(QUERY, stdout=live())
    with pytest.raises(ApplyError, match="older than the cluster's pacemaker-3.9") as caught:
        apply(fake_runner, new("pacemaker-3.7"), schema_dir=schemas)
    assert caught.value.reason.endswith("--validate-with pacemaker-3.9")


def test_a_validate_with_that_names_no_released_schema_is_refused(schemas):
    """pacemaker-next is no release: which Pacemaker takes it cannot be known."""
    problem = schema_problem("pacemaker-next", cib(live()), schemas)
    assert problem is not None and "pacemaker-MAJOR.MINOR" in problem


def test_a_pacemaker_older_than_the_table_is_refused(schemas):
    """A 1.1 DC: the table starts at 2.0.0, and no stackha CIB suits it."""
    problem = schema_problem("pacemaker-3.9", cib(live(dc_version="1.1.18-2b07d5c5a9")), schemas)
    assert problem is not None and "Pacemaker 1.1.18 is older than 2.0.0" in problem


def test_without_a_dc_version_only_the_installed_schemas_limit(schemas):
    """A CIB no DC has written to yet (a saved file) sets no limit from the table."""
    live_cib = cib(live().replace('name="dc-version"', 'name="not-dc-version"'))
    assert property_value(live_cib, "dc-version") is None
    assert schema_problem("pacemaker-3.10", live_cib, schemas) is None


@pytest.mark.parametrize(
    "dc_version, newest",
    [
        ("2.1.5-a3f44794f94", (3, 9)),
        ("2.1.4-5.el8_6.2-dc6eb4362e", (3, 8)),
        ("2.1.9-1.fc41-49aab9983", (3, 10)),
        ("2.0.5-ba59be7122", (3, 5)),
        ("3.0.0-d8340737c", (4, 0)),
        ("3.0.1-16e74fc4da", None),  # newer than the table: no limit from it
    ],
)
def test_the_newest_schema_of_a_dc_version(dc_version, newest):
    """dc-version's release is looked up in the table, its build suffix ignored."""
    assert newest_schema(pacemaker_release(dc_version)) == newest


def test_merge_keeps_the_nodes_and_the_properties_pacemaker_maintains():
    """Nodes (Corosync ids, the operator's attribute) and dc-version & co. stay as they were."""
    live_cib = cib(live())
    merged = merged_cib(live_cib, cib(new()))
    nodes = [(n.get("id"), n.get("uname")) for n in merged.iterfind("configuration/nodes/node")]
    assert nodes == [("1084751361", "ctl1"), ("1084751362", "ctl2"), ("1084751363", "ctl3")]
    assert merged.find("configuration/nodes/node/instance_attributes/nvpair").get("value") == "r1"
    assert property_value(merged, "stonith-enabled") == "false"  # the new CIB's
    assert property_value(merged, "dc-version") == "2.1.5-a3f44794f94"
    assert property_value(merged, "cluster-infrastructure") == "corosync"
    assert property_value(merged, "cluster-name") == "openstack"
    assert property_value(merged, "have-watchdog") == "false"
    sets = merged.findall("configuration/crm_config/cluster_property_set")
    assert [s.get("id") for s in sets] == ["cib-bootstrap-options"]


def test_a_maintained_property_the_new_cib_sets_is_the_new_cibs():
    """cluster-name set in the rendered CIB replaces the cluster's, once."""
    properties = '<nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="x"/>'
    merged = merged_cib(cib(live()), cib(new(properties=properties)))
    names = [n.get("name") for n in merged.iterfind("configuration/crm_config//nvpair")]
    assert names.count("cluster-name") == 1
    assert property_value(merged, "cluster-name") == "x"


def test_merge_takes_the_rendered_sections_and_keeps_the_clusters_own():
    """rsc_defaults, absent from the new CIB, goes; alerts, never rendered, stays."""
    merged = merged_cib(cib(live()), cib(new()))
    sections = [s.tag for s in merged.find("configuration")]
    assert sections == ["crm_config", "nodes", "resources", "constraints", "alerts"]
    assert merged.find("configuration/resources/primitive").get("id") == "vip"


def test_merge_keeps_the_live_version_and_status_and_raises_validate_with():
    """What is pushed carries the versions read (for the CIB manager's check) and status."""
    merged = merged_cib(cib(live("pacemaker-3.7")), cib(new("pacemaker-3.9")))
    assert merged.get("validate-with") == "pacemaker-3.9"
    assert (merged.get("admin_epoch"), merged.get("epoch"), merged.get("num_updates")) == (
        "0",
        "7",
        "3",
    )
    assert merged.find("status/node_state").get("uname") == "ctl1"


def test_the_diff_is_empty_for_the_same_configuration_written_differently():
    """Attribute order, nvpair order, section order and whitespace are no changes."""
    live_cib = cib(live())
    same = cib(
        live()
        .replace(
            '<alert id="snmp" path="/usr/share/pacemaker/alerts/alert_snmp.sh"/>',
            '<alert path="/usr/share/pacemaker/alerts/alert_snmp.sh" id="snmp"/>',
        )
        .replace("    <resources/>\n    <constraints/>\n", "    <constraints/>\n\n<resources/>")
    )
    properties = same.find("configuration/crm_config/cluster_property_set")
    properties[:] = list(reversed(properties))
    assert configuration_diff(live_cib, same) == ""
    assert configuration_diff(live_cib, merged_cib(live_cib, live_cib)) == ""


def test_the_diff_shows_an_added_primitive():
    """Adding the VIP to an otherwise unchanged configuration adds its lines, nothing else."""
    before = cib(new(resources=""))
    after = cib(new())
    diff = configuration_diff(before, after)
    changed = [
        line for line in diff.splitlines()[2:] if line[:1] in "+-" and not line.startswith("@@")
    ]
    assert diff.startswith("--- cluster\n+++ new\n")
    assert changed == [
        "-    <resources/>",
        "+    <resources>",
        '+      <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">',
        '+        <instance_attributes id="vip-instance_attributes">',
        '+          <nvpair id="vip-ip" name="ip" value="192.0.2.10"/>',
        "+        </instance_attributes>",
        "+      </primitive>",
        "+    </resources>",
    ]


def test_apply_checks_shows_and_pushes_the_merged_cib_in_one_replace(fake_runner, schemas):
    """crm_verify and cibadmin --replace both get the merged CIB; the diff is shown first."""
    pushed = merged_text(live(), new())
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(VERIFY, stdin=pushed)
    fake_runner.expect(REPLACE, stdin=pushed)
    out = io.StringIO()
    result = apply(fake_runner, new(), schema_dir=schemas, out=out)
    assert (result.changed, result.pushed, result.warnings) == (True, True, ())
    assert out.getvalue() == result.diff
    assert '+      <primitive id="vip"' in result.diff


def test_a_configuration_crm_verify_rejects_is_not_pushed(fake_runner, schemas):
    """crm_verify's errors are listed (once each, without its logger prefix); no replace runs."""
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(
        VERIFY,
        stdin=merged_text(live(), new()),
        returncode=78,
        stderr=(
            "element rsc_colocation: validity error : IDREF attribute with-rsc references an"
            ' unknown ID "missing"\n'
            "element rsc_colocation: validity error : IDREF attribute with-rsc references an"
            ' unknown ID "missing"\n'
            "(main) \terror: CIB did not pass schema validation\n"
            "crm_verify: Errors found during check: config not valid\n"
        ),
    )
    with pytest.raises(ApplyError, match="nothing was changed") as caught:
        apply(fake_runner, new(), schema_dir=schemas, out=io.StringIO())
    assert caught.value.problems == [
        "element rsc_colocation: validity error : IDREF attribute with-rsc references an"
        ' unknown ID "missing"',
        "CIB did not pass schema validation",
    ]


def test_warnings_alone_do_not_stop_the_push(fake_runner, schemas):
    """crm_verify exits 78 on warnings too; they are shown, and the CIB is pushed."""
    pushed = merged_text(live(), new())
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(
        VERIFY,
        stdin=pushed,
        returncode=78,
        stderr=(
            "(schedule_fencing_and_shutdowns) \twarning: Node ctl3 is unclean but cannot be"
            " fenced\ncrm_verify: Warnings found during check: config may not be valid\n"
        ),
    )
    fake_runner.expect(REPLACE, stdin=pushed)
    out = io.StringIO()
    result = apply(fake_runner, new(), schema_dir=schemas, out=out)
    assert result.pushed
    assert result.warnings == ("Node ctl3 is unclean but cannot be fenced",)
    assert out.getvalue().startswith("warning: Node ctl3 is unclean but cannot be fenced\n---")


def test_a_dry_run_shows_the_diff_and_pushes_nothing(fake_runner, schemas):
    """--dry-run: query and verify, no replace."""
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(VERIFY, stdin=merged_text(live(), new()))
    result = apply(fake_runner, new(), schema_dir=schemas, dry_run=True)
    assert (result.changed, result.pushed) == (True, False)


def test_no_changes_pushes_nothing(fake_runner, schemas):
    """The cluster already runs the new configuration: "no changes", no replace."""
    applied = merged_text(live(), new())
    fake_runner.expect(QUERY, stdout=applied)
    fake_runner.expect(VERIFY, stdin=merged_text(applied, new()))
    out = io.StringIO()
    result = apply(fake_runner, new(), schema_dir=schemas, out=out)
    assert (result.changed, result.pushed, result.diff) == (False, False, "")
    assert out.getvalue() == "no changes\n"


REFUSED_AS_OLDER = "Call failed: Update was older than existing configuration\n"


def test_a_cib_changed_since_the_query_is_not_overwritten(fake_runner, schemas):
    """The CIB manager refuses our older version (exit 103) and the configuration's epoch has
    moved: someone changed it meanwhile; apply says to run it again."""
    pushed = merged_text(live(), new())
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(VERIFY, stdin=pushed)
    fake_runner.expect(REPLACE, stdin=pushed, returncode=103, stderr=REFUSED_AS_OLDER)
    fake_runner.expect(QUERY, stdout=live().replace('epoch="7"', 'epoch="8"'))
    with pytest.raises(ApplyError, match="the CIB changed while we were preparing: run apply"):
        apply(fake_runner, new(), schema_dir=schemas)


def test_a_push_refused_for_a_status_update_is_made_again_on_the_fresh_cib(fake_runner, schemas):
    """Only num_updates moved (an operation result, a node attribute): the same configuration
    is pushed again with the fresh CIB's status and counters."""
    pushed = merged_text(live(), new())
    fresh = live().replace('num_updates="3"', 'num_updates="5"')
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(VERIFY, stdin=pushed)
    fake_runner.expect(REPLACE, stdin=pushed, returncode=103, stderr=REFUSED_AS_OLDER)
    fake_runner.expect(QUERY, stdout=fresh)
    fake_runner.expect(REPLACE, stdin=merged_text(fresh, new()))
    result = apply(fake_runner, new(), schema_dir=schemas)
    assert result.pushed
    assert 'num_updates="5"' in merged_text(fresh, new())


def test_an_unreadable_cib_is_an_apply_error(fake_runner, schemas):
    """No cluster running: cibadmin's own words, as an ApplyError."""
    fake_runner.expect(
        QUERY,
        returncode=102,
        stderr=(
            "Could not connect to the CIB: Transport endpoint is not connected\n"
            "Init failed, could not perform requested operations\n"
        ),
    )
    with pytest.raises(ApplyError, match="Transport endpoint is not connected"):
        apply(fake_runner, new(), schema_dir=schemas)


def test_nodes_the_cluster_does_not_have_are_a_warning(fake_runner, schemas):
    """A rendered node the cluster lacks is not added; the operator is told."""
    text = new().replace('<node id="3" uname="ctl3"/>', '<node id="4" uname="ctl4"/>')
    pushed = merged_text(live(), text)
    fake_runner.expect(QUERY, stdout=live())
    fake_runner.expect(VERIFY, stdin=pushed)
    result = apply(fake_runner, text, schema_dir=schemas, dry_run=True)
    assert result.warnings == (
        "the new CIB names nodes this cluster does not have: ctl4 (nodes come from the "
        "cluster: none is added)",
    )


def test_replace_configuration_pipes_the_section(fake_runner):
    """The configuration-only replace: cibadmin's options, the XML on stdin."""
    argv = ["/usr/sbin/cibadmin", "--replace", "--scope", "configuration", "--xml-pipe"]
    fake_runner.expect(argv, stdin="<configuration/>")
    cibadmin.replace_configuration(fake_runner, "<configuration/>")


def test_a_refused_replace_reports_cibadmin_without_its_xml_dump(fake_runner):
    """On a schema failure cibadmin numbers and prints the whole XML: only its verdict is kept."""
    fake_runner.expect(
        REPLACE,
        stdin="<cib/>",
        returncode=78,
        stderr='   1 <cib validate-with="pacemaker-3.6">\n  26 \n'
        "Call failed: Update does not conform to the configured schema\n",
    )
    with pytest.raises(cibadmin.CibadminError) as caught:
        cibadmin.replace_cib(fake_runner, "<cib/>")
    assert str(caught.value) == (
        "cibadmin --replace failed: Call failed: Update does not conform to the configured schema"
    )
    assert not isinstance(caught.value, cibadmin.CibChanged)


def test_a_silent_failure_on_a_cib_file_asks_whether_it_is_writable(fake_runner):
    """cibadmin exits 1 without a word on a read-only CIB_file (Pacemaker 2.1.5)."""
    fake_runner.expect(REPLACE, stdin="<cib/>", returncode=1)
    with pytest.raises(cibadmin.CibadminError, match=r"is /tmp/cib.xml writable\?"):
        cibadmin.replace_cib(fake_runner, "<cib/>", cib_file="/tmp/cib.xml")


def test_the_old_configurations_failures_are_not_held_against_the_new_one():
    """Failed operations in the status (a haproxy that could not bind) are the cluster's past;
    crm_verify calls them errors, so the new configuration is judged without the history."""
    from stackha.cib.apply import without_history

    history = (
        '<lrm id="1084751361"><lrm_resources><lrm_resource id="haproxy" class="ocf" '
        'provider="stackha" type="haproxy"/></lrm_resources></lrm>'
        '<transient_attributes id="1084751361"/>'
    )
    text = live().replace('expected="member"/>', f'expected="member">{history}</node_state>')
    stripped = without_history(cib(text))
    assert stripped.find("status/node_state/lrm") is None
    assert stripped.find("status/node_state[@uname='ctl1']/transient_attributes") is not None
    assert cib(text).find("status/node_state/lrm") is not None  # the CIB pushed keeps it
