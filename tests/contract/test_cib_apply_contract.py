"""`stackha cib apply` end to end with Pacemaker's own tools, on a CIB file instead of a cluster
(CIB_file: cibadmin, crm_attribute and crm_simulate then read and write that file; no cluster
runs). What Pacemaker 2.1.5 does there is what these tests assert: a configuration change
rewrites the file with epoch + 1, a refused one leaves it byte for byte as it was."""

from __future__ import annotations

import io

import pytest
from lxml import etree
from stackha.cib.apply import ApplyError, apply
from stackha.runner import SubprocessRunner

NODES = ("ctl1", "ctl2", "ctl3")
DC_VERSION = "2.1.5-a3f44794f94"

NEW = """<cib validate-with="{schema}">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="ctl1"/>
      <node id="2" uname="ctl2"/>
      <node id="3" uname="ctl3"/>
    </nodes>
    <resources>
      <clone id="db-clone">
        <meta_attributes id="db-clone-meta_attributes">
          <nvpair id="db-clone-promotable" name="promotable" value="true"/>
        </meta_attributes>
        <primitive id="db" class="ocf" provider="pacemaker" type="Stateful">
          <operations>
            <op id="db-monitor-10s" name="monitor" interval="10s" role="Promoted"/>
            <op id="db-monitor-11s" name="monitor" interval="11s" role="Unpromoted"/>
          </operations>
        </primitive>
      </clone>
      <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="vip-instance_attributes">
          <nvpair id="vip-ip" name="ip" value="192.0.2.10"/>
        </instance_attributes>
      </primitive>
    </resources>
    <constraints>
      <rsc_colocation id="vip-with-db" rsc="vip" with-rsc="{with_rsc}" with-rsc-role="Promoted"
                      score="INFINITY"/>
    </constraints>
  </configuration>
  <status/>
</cib>
"""


def new(schema="pacemaker-3.9", with_rsc="db-clone"):
    return NEW.format(schema=schema, with_rsc=with_rsc)


@pytest.fixture
def runner():
    return SubprocessRunner()


def make_cluster_file(runner, path, schema="pacemaker-3.9"):
    """A CIB as a running cluster's looks: made by cibadmin --empty, three nodes (one with an
    attribute the operator set), the properties the controller writes, every node up."""
    empty = path.parent / "empty.xml"
    empty.write_text(
        runner.run(["/usr/sbin/cibadmin", "--empty", schema], timeout=30, check=True).stdout
    )
    env = {"CIB_file": str(empty)}
    for number, name in enumerate(NODES, start=1):
        node = f'<node id="{number}" uname="{name}"/>'
        if name == "ctl1":
            node = (
                '<node id="1" uname="ctl1"><instance_attributes id="nodes-1">'
                '<nvpair id="nodes-1-rack" name="rack" value="r1"/></instance_attributes></node>'
            )
        runner.run(
            ["/usr/sbin/cibadmin", "--create", "--scope", "nodes", "--xml-text", node],
            timeout=30,
            env=env,
            check=True,
        )
    for name, value in (("dc-version", DC_VERSION), ("cluster-name", "openstack")):
        runner.run(
            ["/usr/sbin/crm_attribute", "--type", "crm_config", "--name", name, "--update", value],
            timeout=30,
            env=env,
            check=True,
        )
    up = [argument for name in NODES for argument in ("--node-up", name)]
    runner.run(
        ["/usr/sbin/crm_simulate", "--xml-file", str(empty), "--quiet", *up, "--quorum=1"]
        + ["--save-output", str(path)],
        timeout=30,
        check=True,
    )
    return path


def read(path):
    return etree.parse(str(path)).getroot()


def versions(cib):
    return tuple(int(cib.get(name)) for name in ("admin_epoch", "epoch", "num_updates"))


def test_a_new_configuration_is_applied_and_the_nodes_kept(runner, tmp_path):
    """The promotable clone, the VIP and its colocation land in the file; nodes, dc-version and
    the operator's node attribute stay; the epoch moves by one; a second apply changes
    nothing."""
    path = make_cluster_file(runner, tmp_path / "cib.xml")
    before = versions(read(path))
    out = io.StringIO()

    result = apply(runner, new(), cib_file=str(path), out=out)

    assert (result.changed, result.pushed) == (True, True)
    assert '+      <primitive id="vip"' in out.getvalue()
    cib = read(path)
    assert [c.get("id") for c in cib.find("configuration/resources")] == ["db-clone", "vip"]
    assert cib.find("configuration/constraints/rsc_colocation").get("with-rsc-role") == ("Promoted")
    assert [(n.get("id"), n.get("uname")) for n in cib.iterfind("configuration/nodes/node")] == [
        ("1", "ctl1"),
        ("2", "ctl2"),
        ("3", "ctl3"),
    ]
    assert cib.find("configuration/nodes/node/instance_attributes/nvpair").get("value") == "r1"
    properties = {
        nvpair.get("name"): nvpair.get("value")
        for nvpair in cib.iterfind("configuration/crm_config//nvpair")
    }
    assert properties == {
        "dc-version": DC_VERSION,
        "cluster-name": "openstack",
        "stonith-enabled": "false",
    }
    assert len(cib.findall("status/node_state")) == 3
    assert versions(cib) == (before[0], before[1] + 1, 0)

    text = path.read_bytes()
    again = apply(runner, new(), cib_file=str(path))
    assert (again.changed, again.pushed) == (False, False)
    assert path.read_bytes() == text


def test_an_older_schema_on_the_cluster_is_raised_in_the_same_replace(runner, tmp_path):
    """A cluster CIB at pacemaker-3.6 cannot take Promoted roles in its configuration alone:
    the one whole-CIB replace carries validate-with pacemaker-3.9 with them."""
    path = make_cluster_file(runner, tmp_path / "cib.xml", schema="pacemaker-3.6")

    result = apply(runner, new(), cib_file=str(path))

    assert result.pushed
    cib = read(path)
    assert cib.get("validate-with") == "pacemaker-3.9"
    assert cib.find("configuration/resources/clone").get("id") == "db-clone"
    assert '-<cib validate-with="pacemaker-3.6">' in result.diff


def test_a_colocation_with_a_missing_resource_is_refused_and_nothing_changes(runner, tmp_path):
    """crm_verify rejects the configuration; the file stays byte for byte as it was."""
    path = make_cluster_file(runner, tmp_path / "cib.xml")
    text = path.read_bytes()

    with pytest.raises(ApplyError) as caught:
        apply(runner, new(with_rsc="missing"), cib_file=str(path))

    assert "crm_verify" in caught.value.reason
    assert any('unknown ID "missing"' in problem for problem in caught.value.problems)
    assert path.read_bytes() == text


def test_a_schema_newer_than_the_dc_is_refused_and_nothing_changes(runner, tmp_path):
    """pacemaker-4.0 for a cluster whose DC runs 2.1.5: refused before any check or push."""
    path = make_cluster_file(runner, tmp_path / "cib.xml")
    text = path.read_bytes()

    with pytest.raises(ApplyError) as caught:
        apply(runner, new(schema="pacemaker-4.0"), cib_file=str(path))

    assert caught.value.reason == (
        "the CIB is for schema pacemaker-4.0; this cluster's Pacemaker 2.1.5 accepts up to "
        "pacemaker-3.9: render it with --validate-with pacemaker-3.9"
    )
    assert path.read_bytes() == text


class ChangeBeforePush:
    """A runner that, just before the push, lets someone else change the CIB first."""

    def __init__(self, runner, path):
        self.runner = runner
        self.path = path

    def run(self, argv, **options):
        if "--replace" in argv:
            self.runner.run(
                ["/usr/sbin/crm_attribute", "--type", "crm_config", "--name", "maintenance-mode"]
                + ["--update", "true"],
                timeout=30,
                env={"CIB_file": str(self.path)},
                check=True,
            )
        return self.runner.run(argv, **options)


def test_a_change_made_between_query_and_push_is_not_overwritten(runner, tmp_path):
    """The CIB manager refuses our replacement, older than the CIB: the other change stays."""
    path = make_cluster_file(runner, tmp_path / "cib.xml")

    with pytest.raises(ApplyError, match="the CIB changed while we were preparing"):
        apply(ChangeBeforePush(runner, path), new(), cib_file=str(path))

    cib = read(path)
    assert cib.find("configuration/resources/primitive") is None
    names = [nvpair.get("name") for nvpair in cib.iterfind("configuration/crm_config//nvpair")]
    assert "maintenance-mode" in names


def test_the_command_renders_checks_and_applies_a_site_to_a_cib_file(runner, tmp_path):
    """stackha cib render, then apply --dry-run (the diff, the file untouched), then apply:
    the rendered resources land in the file, its nodes kept."""
    from pathlib import Path

    from stackha import cli

    example = Path(__file__).resolve().parents[2] / "crm-templates" / "site.example.ini"
    site = tmp_path / "site.ini"
    site.write_text(example.read_text())
    cib_xml = tmp_path / "rendered.xml"
    assert cli.main(["cib", "render", str(site), "-o", str(cib_xml)], out=io.StringIO()) == 0
    path = make_cluster_file(runner, tmp_path / "cluster.xml")
    before = path.read_bytes()
    out = io.StringIO()
    argv = ["cib", "apply", str(cib_xml), "--cib-file", str(path)]
    assert cli.main([*argv, "--dry-run"], out=out) == 0
    assert '+      <clone id="haproxy-clone">' in out.getvalue()
    assert out.getvalue().endswith("not applied (--dry-run)\n")
    assert path.read_bytes() == before
    out = io.StringIO()
    assert cli.main(argv, out=out) == 0, out.getvalue()
    assert out.getvalue().endswith("applied\n")
    cib = read(path)
    assert "galera-clone" in [c.get("id") for c in cib.find("configuration/resources")]
    assert [n.get("uname") for n in cib.iterfind("configuration/nodes/node")] == list(NODES)
    out = io.StringIO()
    assert cli.main(argv, out=out) == 0
    assert out.getvalue().endswith("no changes\n") and "applied" not in out.getvalue()
