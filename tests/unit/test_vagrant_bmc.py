"""The Vagrant lab's BMCs power VMs through virsh: the exact commands, with the fake runner."""

import json

import pytest
from stackha.lab import vagrant_bmc
from stackha.lab.namespaces import LabError

VIRSH = ["/usr/bin/virsh", "-c", "qemu:///system"]


def machines(fake_runner, tmp_path):
    return vagrant_bmc.VirtualMachines(fake_runner, tmp_path)


@pytest.mark.parametrize(
    ("domstate", "power"),
    [("running\n", "on"), ("paused\n", "on"), ("in shutdown\n", "on"), ("shut off\n", "off")],
)
def test_status_is_what_libvirt_says(fake_runner, tmp_path, domstate, power):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout=domstate)
    assert machines(fake_runner, tmp_path).power_state("node2") == power


def test_status_libvirt_cannot_tell_is_an_error_not_a_guess(fake_runner, tmp_path):
    fake_runner.expect(
        [*VIRSH, "domstate", "stackha-node1"],
        returncode=1,
        stderr="error: failed to get domain 'stackha-node1'\n",
    )
    with pytest.raises(LabError, match="virsh domstate stackha-node1: error: failed to get"):
        machines(fake_runner, tmp_path).power_state("node1")


def test_off_cuts_the_power_of_a_running_vm(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node1"], stdout="running\n")
    fake_runner.expect([*VIRSH, "destroy", "stackha-node1"])
    fake_runner.expect([*VIRSH, "domstate", "stackha-node1"], stdout="shut off\n")
    assert machines(fake_runner, tmp_path).set_power("node1", "off") == "off"


def test_off_of_a_vm_that_is_off_does_nothing_and_says_off(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node1"], stdout="shut off\n")
    fake_runner.expect([*VIRSH, "domstate", "stackha-node1"], stdout="shut off\n")
    assert machines(fake_runner, tmp_path).set_power("node1", "off") == "off"


def test_reset_of_a_running_vm_resets_it(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node3"], stdout="running\n")
    fake_runner.expect([*VIRSH, "reset", "stackha-node3"])
    fake_runner.expect([*VIRSH, "domstate", "stackha-node3"], stdout="running\n")
    assert machines(fake_runner, tmp_path).set_power("node3", "reset") == "on"


def test_reset_of_a_vm_that_is_off_powers_it_on(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node3"], stdout="shut off\n")
    fake_runner.expect([*VIRSH, "domstate", "stackha-node3"], stdout="shut off\n")
    fake_runner.expect([*VIRSH, "start", "stackha-node3"])
    fake_runner.expect([*VIRSH, "domstate", "stackha-node3"], stdout="running\n")
    assert machines(fake_runner, tmp_path).set_power("node3", "reset") == "on"


def test_cycle_is_off_then_on(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout="running\n")
    fake_runner.expect([*VIRSH, "destroy", "stackha-node2"])
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout="shut off\n")
    fake_runner.expect([*VIRSH, "start", "stackha-node2"])
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout="running\n")
    assert machines(fake_runner, tmp_path).set_power("node2", "cycle") == "on"


def test_a_failed_start_is_an_error_the_bmc_answers_busy_to(fake_runner, tmp_path):
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout="shut off\n")
    fake_runner.expect([*VIRSH, "domstate", "stackha-node2"], stdout="shut off\n")
    fake_runner.expect(
        [*VIRSH, "start", "stackha-node2"],
        returncode=1,
        stderr="error: Failed to start domain 'stackha-node2'\n",
    )
    with pytest.raises(LabError, match="virsh start stackha-node2: error: Failed to start"):
        machines(fake_runner, tmp_path).set_power("node2", "on")


def test_an_unknown_action_is_refused_before_libvirt_is_asked(fake_runner, tmp_path):
    with pytest.raises(LabError, match="unknown power action diag"):
        machines(fake_runner, tmp_path).set_power("node1", "diag")


def test_main_without_an_inventory_says_so_and_exits_1(tmp_path, capsys):
    assert vagrant_bmc.main([str(tmp_path), "node1"]) == 1
    assert "BMC of node1 cannot start: the lab's inventory:" in capsys.readouterr().err


def test_main_for_a_node_the_inventory_lacks_says_so_and_exits_1(tmp_path, capsys):
    (tmp_path / "inventory.json").write_text(json.dumps({"nodes": []}))
    assert vagrant_bmc.main([str(tmp_path), "node9"]) == 1
    assert "no node node9 in the lab's inventory" in capsys.readouterr().err


def test_main_usage(capsys):
    assert vagrant_bmc.main([]) == 2
    assert "usage:" in capsys.readouterr().err
