"""Virtual BMCs for the Vagrant lab, with the fake runner (no libvirt here)."""

import configparser
import json

import pytest
from stackha.lab import vagrant_bmc
from stackha.lab.namespaces import LabError

NET_INFO = """Name:           stackha-lab
UUID:           0b5c
Active:         yes
Persistent:     yes
Autostart:      no
Bridge:         virbr7
"""


def vbmc_config(directory, domain):
    path = directory / domain / "config"
    path.parent.mkdir(parents=True)
    path.write_text(
        f"[VirtualBMC]\nusername = admin\npassword = password\ndomain_name = {domain}\n"
    )
    return path


def test_up_adds_a_bmc_per_vm_at_the_namespace_labs_addresses(fake_runner, tmp_path):
    """Same BMC addresses, port and user as the namespace lab; the password never on argv."""
    configs = [vbmc_config(tmp_path / "vbmc", f"vagrant_node{i}") for i in (1, 2)]
    fake_runner.expect(["virsh", "net-info", "stackha-lab"], stdout=NET_INFO)
    for i in (1, 2):
        fake_runner.expect(["ip", "addr", "add", f"192.168.213.10{i}/24", "dev", "virbr7"])
        fake_runner.expect(
            [
                "vbmc",
                "add",
                f"vagrant_node{i}",
                "--address",
                f"192.168.213.10{i}",
                "--port",
                "623",
                "--username",
                "admin",
                "--libvirt-uri",
                "qemu:///system",
            ]
        )
        fake_runner.expect(["vbmc", "start", f"vagrant_node{i}"])
    path = vagrant_bmc.up(
        fake_runner,
        2,
        "192.168.213.0/24",
        "vbmc",
        tmp_path / "vbmc",
        tmp_path / "shared",
        password="s3cret",
    )
    for config in configs:
        parser = configparser.ConfigParser()
        parser.read(config)
        assert parser["VirtualBMC"]["password"] == "s3cret"
    inventory = json.loads(path.read_text())
    assert [n["bmc"]["address"] for n in inventory["nodes"]] == [
        "192.168.213.101",
        "192.168.213.102",
    ]
    assert inventory["nodes"][0]["bmc"] == {
        "address": "192.168.213.101",
        "port": 623,
        "username": "admin",
        "password": "s3cret",
        "lanplus": True,
    }
    assert path.stat().st_mode & 0o077 == 0


def test_up_without_the_libvirt_network_says_what_to_do(fake_runner, tmp_path):
    fake_runner.expect(
        ["virsh", "net-info", "stackha-lab"], returncode=1, stderr="error: Network not found"
    )
    with pytest.raises(LabError, match="run 'vagrant up' first"):
        vagrant_bmc.up(fake_runner, 1, "192.168.213.0/24", "vbmc", tmp_path, tmp_path)


def test_down_removes_the_bmcs_and_their_addresses(fake_runner):
    fake_runner.expect(["virsh", "net-info", "stackha-lab"], stdout=NET_INFO)
    fake_runner.expect(["vbmc", "stop", "vagrant_node1"])
    fake_runner.expect(["vbmc", "delete", "vagrant_node1"])
    fake_runner.expect(["ip", "addr", "del", "192.168.213.101/24", "dev", "virbr7"])
    vagrant_bmc.down(fake_runner, 1, "192.168.213.0/24", "vbmc")
