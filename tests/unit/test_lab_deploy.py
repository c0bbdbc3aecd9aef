"""What stackha.lab.deploy writes before it runs anything: the lab's site file (which must
render and pass the checks that need no cluster), the fencing passwords, and that down removes
all of it. (The deployment itself: tests/lab/test_openstack_stack.py.)"""

from __future__ import annotations

import stat

from fakes import FakeProcessTable, FakeRunner
from stackha.cib.render import render_cib
from stackha.cib.site import read_site
from stackha.lab import deploy
from stackha.lab.lab import FENCING_DIR, RENDERED_CIBS, SITE_FILE, Lab, LabState, plan


def a_lab(tmp_path, fake_clock):
    directory = tmp_path / "lab"
    directory.mkdir()
    lab = Lab(str(directory), FakeRunner(), fake_clock, FakeProcessTable(fake_clock))
    subnet = "192.0.2.0/24"
    state = LabState(subnet, "192.0.2.1", created_root=str(directory), nodes=plan(3, subnet))
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
    assert [str(v.address) for v in site.vips] == ["192.0.2.100/24"]
    assert site.stonith_enabled and site.runs("keystone")
    assert not read_site(deploy.site_text(lab, "systemd")).runs("keystone")
    text = render_cib(site, "pacemaker-3.9")
    assert "bmc-secret" not in text and "pdu-secret" not in text
    assert f'value="/bin/cat {lab.directory / FENCING_DIR}/bmc.password"' in text


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
    lab.down()
    assert not lab.directory.exists()
