"""The Vagrant lab's orchestration, with the fake runner, clock and process table: refusals
before anything is made, the exact commands into a VM, the site it deploys."""

import configparser

import pytest
from fakes import FakeClock, FakeProcess, FakeProcessTable, FakeRunner
from stackha.cib.site import read_site
from stackha.lab import vagrant_lab
from stackha.lab.namespaces import NSENTER, LabError
from stackha.lab.vagrant_lab import VagrantLab, VmRunner, vagrant_error, vm_site_text

LIBVIRTD = 77


@pytest.fixture
def parts(tmp_path):
    clock = FakeClock()
    runner, processes = FakeRunner(), FakeProcessTable(clock)
    vagrant_dir = tmp_path / "vagrant"
    vagrant_dir.mkdir()
    (vagrant_dir / "Vagrantfile").write_text("# a Vagrantfile\n")
    box = tmp_path / "stackha-trixie.box"
    box.write_bytes(b"box")
    lab = VagrantLab(runner, processes, clock, tmp_path / "lab", vagrant_dir)
    yield lab, runner, processes, box
    runner.assert_done()


def up(lab, box, **settings):
    return lab.up(box, "trixie", **settings)


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"subnet": "192.168.214.0/24"}, "collides with the Vagrant lab's management network"),
        ({"subnet": "10.1.0.0/16"}, "the Vagrant lab takes an IPv4 /24"),
        ({"subnet": "10.1.0.300/24"}, "subnet 10.1.0.300/24:"),
        ({"nodes": 0}, "0 nodes: a lab has 1 to 64 nodes"),
        ({"memory_mib": 256}, "256 MiB per VM: a node needs 512 or more"),
        ({"cpus": 0}, "0 processors per VM: 1 or more"),
        ({"accel": "hvf"}, "acceleration hvf: kvm or tcg"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_made(parts, settings, reason):
    lab, _, _, box = parts
    with pytest.raises(LabError, match=reason):
        up(lab, box, **settings)
    assert not lab.directory.exists()


def test_a_missing_box_is_named(parts, tmp_path):
    lab, _, _, _ = parts
    with pytest.raises(LabError, match=r"nowhere\.box: no such box \(stackha lab vagrant-box"):
        up(lab, tmp_path / "nowhere.box")
    assert not lab.directory.exists()


def test_a_lab_already_up_is_refused_and_left_alone(parts):
    lab, _, _, box = parts
    lab.directory.mkdir()
    (lab.directory / "lab.json").write_text('{"nodes": 3}')
    with pytest.raises(LabError, match="a Vagrant lab is up in .*: stackha lab vagrant-down"):
        up(lab, box)
    assert (lab.directory / "lab.json").read_text() == '{"nodes": 3}'


def test_outside_a_checkout_the_missing_vagrantfile_is_named(parts, tmp_path):
    lab, _, _, box = parts
    (lab.vagrant_dir / "Vagrantfile").unlink()
    with pytest.raises(LabError, match="no Vagrantfile in .*: the Vagrant lab runs from a"):
        up(lab, box)


def test_missing_host_packages_are_named(parts, monkeypatch):
    lab, _, _, box = parts
    monkeypatch.setattr(vagrant_lab, "REQUIRED", {"/nonexistent/vagrant": "vagrant"})
    monkeypatch.setattr(vagrant_lab, "VAGRANT_LIBVIRT_GLOB", "/nonexistent/vagrant-libvirt-*")
    with pytest.raises(
        LabError,
        match=r"missing Debian packages: vagrant \(/nonexistent/vagrant\), vagrant-libvirt",
    ):
        up(lab, box)


def running_lab(parts):
    lab, runner, processes, _ = parts
    lab.hypervisor.directory.mkdir(parents=True)
    lab.hypervisor.pid_file.write_text(f"{LIBVIRTD}\n")
    processes.add(LIBVIRTD, FakeProcess("libvirtd"))
    (lab.directory / "lab.json").write_text('{"nodes": 3, "subnet": "192.168.213.0/24"}')
    return lab, runner


def test_a_vm_command_is_one_ssh_with_sudo_and_its_secret_on_stdin(parts):
    """Each argument quoted for the VM's shell; the password never on a command line."""
    lab, runner = running_lab(parts)
    config = lab.directory / "ssh_config"
    runner.expect(
        [NSENTER, "-t", str(LIBVIRTD), "-m", "-n", "--", "/usr/bin/ssh", "-F", str(config)]
        + ["-o", "BatchMode=yes", "node2"]
        + ["sudo --non-interactive -- install -D -m 0600 /dev/stdin '/etc/a b/password'"],
        stdin="s3cret",
    )
    lab.vm("node2").run(
        ["install", "-D", "-m", "0600", "/dev/stdin", "/etc/a b/password"],
        timeout=60,
        stdin="s3cret",
    )


def test_a_vm_commands_environment_is_set_in_the_vm_not_for_ssh(parts):
    lab, runner = running_lab(parts)
    config = lab.directory / "ssh_config"
    runner.expect(
        [NSENTER, "-t", str(LIBVIRTD), "-m", "-n", "--", "/usr/bin/ssh", "-F", str(config)]
        + ["-o", "BatchMode=yes", "node1", "sudo --non-interactive -- env LC_ALL=C crm_mon -1"],
        stdin="",
    )
    lab.vm("node1").run(["crm_mon", "-1"], timeout=60, env={"LC_ALL": "C"})


def test_a_vm_the_lab_lacks_is_named(parts):
    lab, _ = running_lab(parts)
    with pytest.raises(LabError, match=r"no VM node4 in the Vagrant lab \(it has node1, node2"):
        lab.vm("node4")


def test_no_process_is_started_in_a_vm_from_the_host(parts):
    lab, _ = running_lab(parts)
    assert isinstance(lab.vm("node1"), VmRunner)
    with pytest.raises(LabError, match="node1: the Vagrant lab starts no process"):
        lab.vm("node1").spawn(None)


def test_the_site_is_one_stackha_cib_render_reads():
    """Every VM with its BMC and the password file, the PDU over telnet, fencing on, HAProxy,
    the VIP at .10."""
    text = vm_site_text(3, "192.168.213.0/24", "eth1")
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["cluster"]["stonith_enabled"] == "true"
    assert parser["node node3"]["bmc"] == "192.168.213.103"
    assert parser["node node3"]["bmc_password_file"] == "/etc/stackha/fencing/bmc.password"
    assert parser["vip public"]["address"] == "192.168.213.10/24"
    assert parser["vip public"]["nic"] == "eth1"
    assert parser["pdu lab"]["address"] == "192.168.213.99"
    assert parser["pdu lab"]["transport"] == "telnet"
    assert parser["pdu lab"]["outlets"] == "node1:1 node2:2 node3:3"
    assert parser["pdu lab"]["password_file"] == "/etc/stackha/fencing/pdu.password"
    site = read_site(text)
    assert [node.name for node in site.nodes] == ["node1", "node2", "node3"]


def test_a_failed_vagrant_command_is_named_by_what_the_vm_and_vagrant_said_last():
    from stackha.runner import Result

    out = "Bringing machine 'node1' up...\r\nProgress: 40%\r\n==> node1: Running provisioner\n"
    out += "    node1: W: Some index files failed to download.\n"
    out += "    node1: E: Unable to locate package rsync\n"
    err = "The SSH command responded with a non-zero exit status. Vagrant\nassumes that ...\n"
    assert vagrant_error(Result(("vagrant",), 1, out, err)) == (
        "node1: E: Unable to locate package rsync | The SSH command responded with a non-zero "
        "exit status. Vagrant"
    )
    assert vagrant_error(Result(("vagrant",), 1, "", "")) == "exit status 1"


def test_a_second_vagrant_lab_is_refused_while_one_runs(parts):
    """The hypervisor's namespace exists and is not this directory's: refused before anything
    is written, so nothing of the running lab is touched by a cleanup."""
    lab, runner, _, box = parts
    runner.expect(["/sbin/ip", "netns", "list"], stdout="stackha-vagrant (id: 3)\n")
    with pytest.raises(LabError, match="network namespace stackha-vagrant exists: another"):
        up(lab, box)
    assert not lab.directory.exists()
