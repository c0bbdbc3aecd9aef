"""What stackha.lab.deploy writes before it runs anything: the lab's site file (which must
render and pass the checks that need no cluster), the fencing passwords, where apply's diffs go,
and that down removes all of it. (The deployment itself: tests/lab/test_openstack_stack.py.)"""

from __future__ import annotations

import stat

import pytest
from fakes import FakeProcessTable, FakeRunner
from stackha.cib.render import render_cib
from stackha.cib.site import read_site
from stackha.lab import deploy
from stackha.lab.lab import (
    DEPLOY_LOG,
    FENCING_DIR,
    RENDERED_CIBS,
    SITE_FILE,
    Lab,
    LabState,
    plan,
)
from stackha.lab.namespaces import NSENTER, LabError

DIFF = "--- live\n+++ new\n@@ -1 +1 @@\n-<resources/>\n+<resources><clone/></resources>\n"


def a_lab(tmp_path, fake_clock, runner=None, progress=None):
    directory = tmp_path / "lab"
    directory.mkdir()
    lab = Lab(
        str(directory), runner or FakeRunner(), fake_clock, FakeProcessTable(fake_clock), progress
    )
    subnet = "192.0.2.0/24"
    state = LabState(subnet, "192.0.2.1", created_root=str(directory), nodes=plan(3, subnet))
    state.nodes[0].init_pid = 4242
    state.pdu_address = "192.0.2.99"
    lab.save(state)
    lab._write_inventory(state, "bmc-secret", "pdu-secret")
    return lab


def test_the_labs_site_has_every_node_bmc_pdu_and_service(tmp_path, fake_clock):
    lab = a_lab(tmp_path, fake_clock)
    site = read_site(deploy.site_text(lab), "lab site")
    assert site.node_names() == ["node1", "node2", "node3"]
    assert [(n.bmc.address, n.bmc.port) for n in site.nodes if n.bmc] == [
        (n.bmc_address, 623) for n in lab.load().nodes
    ]
    assert site.pdus[0].outlets == (("node1", "1"), ("node2", "2"), ("node3", "3"))
    assert [(str(v.address), v.serves) for v in site.vips] == [
        ("192.0.2.100/24", "haproxy"),
        ("192.0.2.98/24", "database"),
    ]
    assert site.database_path == "haproxy"
    assert site.stonith_enabled and site.runs("keystone")
    assert not read_site(deploy.site_text(lab, "systemd")).runs("keystone")
    text = render_cib(site, "pacemaker-3.9")
    assert "bmc-secret" not in text and "pdu-secret" not in text
    assert f'value="/bin/cat {lab.directory / FENCING_DIR}/bmc.password"' in text


def test_a_lab_deploys_every_api_service_or_those_asked_for(tmp_path, fake_clock):
    lab = a_lab(tmp_path, fake_clock)
    apis = ("keystone", "placement-api", "nova-api", "glance-api", "neutron-server", "cinder-api")
    assert read_site(deploy.site_text(lab), "lab site").services == (
        "haproxy",
        "galera",
        "rabbitmq",
        "memcached",
        *apis,
    )
    chosen = deploy.api_services(["nova-api", "keystone"])
    assert [service.name for service in chosen] == ["keystone", "nova-api"]  # keystone first
    site = read_site(deploy.site_text(lab, apis=chosen), "lab site")
    assert site.services == ("haproxy", "galera", "rabbitmq", "memcached", "keystone", "nova-api")
    assert [s.name for s in site.service_settings if s.parameters] == [
        "haproxy",
        "rabbitmq",
        "keystone",
        "nova-api",
    ]
    with pytest.raises(LabError, match="unknown API service 'swift'"):
        deploy.api_services(["keystone", "swift"])
    with pytest.raises(LabError, match="need keystone"):
        deploy.api_services(["nova-api"])


def test_the_fencing_passwords_are_root_only_files_and_down_removes_everything(
    tmp_path, fake_clock
):
    lab = a_lab(tmp_path, fake_clock)
    deploy.write_fencing_passwords(lab)
    bmc = lab.directory / FENCING_DIR / "bmc.password"
    assert bmc.read_text() == "bmc-secret\n"
    assert stat.S_IMODE(bmc.stat().st_mode) == 0o600
    assert stat.S_IMODE(bmc.parent.stat().st_mode) == 0o700
    assert (lab.directory / FENCING_DIR / "pdu.password").read_text() == "pdu-secret\n"
    (lab.directory / SITE_FILE).write_text(deploy.site_text(lab))
    for name in RENDERED_CIBS:
        (lab.directory / name).write_text("<cib/>")
    (lab.directory / DEPLOY_LOG).write_text(DIFF)
    lab.down()
    assert not lab.directory.exists()


def apply_in_node1(cib):
    return [NSENTER, "-t", "4242", "-n", "-m", "-u", "-p", "--", "stackha", "cib", "apply", cib]


def test_applys_diff_goes_to_the_log_named_in_one_progress_line_not_to_the_screen(
    tmp_path, fake_clock, fake_runner, capsys
):
    shown = []
    lab = a_lab(tmp_path, fake_clock, fake_runner, shown.append)
    cib = lab.directory / RENDERED_CIBS[0]
    fake_runner.expect(apply_in_node1(str(cib)), stdout=DIFF, stderr="note: a warning\n")
    deployer = deploy.Deployer(lab, "stackha")
    deployer.start_log()
    deployer.push(cib)
    log = lab.directory / DEPLOY_LOG
    assert shown == [f"CIB diffs: {log}"]
    assert DIFF in log.read_text() and "note: a warning" in log.read_text()
    assert capsys.readouterr() == ("", "")


def test_a_refused_apply_says_why_and_names_the_log(tmp_path, fake_clock, fake_runner):
    lab = a_lab(tmp_path, fake_clock, fake_runner)
    cib = lab.directory / RENDERED_CIBS[1]
    fake_runner.expect(apply_in_node1(str(cib)), 1, stderr="stackha cib apply: error: refused\n")
    deployer = deploy.Deployer(lab, "stackha")
    deployer.start_log()
    with pytest.raises(LabError, match=f"error: refused \\(see {lab.directory / DEPLOY_LOG}\\)"):
        deployer.push(cib)
    assert "(exit 1)" in (lab.directory / DEPLOY_LOG).read_text()


def test_a_refusal_names_the_first_failed_check_and_its_first_problem():
    checks = (
        "ok    schema pacemaker-4.0\n"
        "FAIL  crm_simulate: node2 lost\n"
        "      vip-public is stopped\n"
        "      haproxy-clone is stopped\n"
        "FAIL  crm_simulate: node3 lost\n"
        "      vip-public is stopped\n"
    )
    assert deploy.first_failure(checks) == ": crm_simulate: node2 lost: vip-public is stopped"
    assert deploy.first_failure("FAIL  crm_verify\n") == ": crm_verify"
    assert deploy.first_failure("ok    schema\n") == ""
