"""The Vagrant lab's hypervisor (libvirtd in namespaces of its own), with the fake runner,
clock and process table: nothing here starts libvirtd, makes a namespace or mounts anything."""

import signal
import subprocess
from pathlib import Path

import pytest
from fakes import FakeClock, FakeProcess, FakeProcessTable, FakeRunner
from stackha.lab import vagrant_host
from stackha.lab.namespaces import NSENTER, LabError
from stackha.lab.vagrant_host import Hypervisor, acceleration

IP = "/sbin/ip"
NS = "stackha-vagrant"
TCG_WRAPPER = Path(__file__).resolve().parents[2] / "vagrant" / "qemu-tcg"
LIBVIRTD_PID = 4001  # what FakeRunner's first spawn returns
VIRSH_VERSION = [
    NSENTER,
    "-t",
    str(LIBVIRTD_PID),
    "-m",
    "-n",
    "--",
    "/usr/bin/virsh",
    "-c",
    "qemu:///system",
    "version",
]

POOL_STEPS = [
    ["pool-define-as", "default", "dir", "--target", "/var/lib/libvirt/images"],
    ["pool-build", "default"],
    ["pool-start", "default"],
]


def expect_answering(runner, **version):
    """virsh version answers, then the storage pool is defined, built and started inside."""
    runner.expect(VIRSH_VERSION, **version)
    for step in POOL_STEPS:
        runner.expect([*VIRSH_VERSION[:-1], *step])


class LibvirtdRunner(FakeRunner):
    """The fake runner, whose spawned libvirtd writes its pid file and appears in the process
    table (unless told it dies at once); the environment of each command recorded."""

    def __init__(self, processes, pid_file, starts=True):
        super().__init__()
        self.processes, self.pid_file, self.starts = processes, pid_file, starts
        self.environments = []

    def spawn(self, spec):
        pid = super().spawn(spec)
        if self.starts:
            self.processes.add(pid, FakeProcess("libvirtd", dies_on={signal.SIGTERM: 0.2}))
            self.pid_file.write_text(f"{pid}\n")
        return pid

    def run(self, argv, *, timeout, stdin=None, env=None, check=False):
        self.environments.append(env)
        return super().run(argv, timeout=timeout, stdin=stdin, env=env, check=check)


@pytest.fixture
def system(tmp_path):
    """A root directory with every program the hypervisor needs, executable."""
    root = tmp_path / "system"
    for program in vagrant_host.REQUIRED:
        path = root / program.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return root


@pytest.fixture
def host_etc(tmp_path):
    """A host /etc/libvirt with configuration, nwfilters, a domain and a leaked pool."""
    etc = tmp_path / "etc-libvirt"
    (etc / "nwfilter").mkdir(parents=True)
    (etc / "nwfilter" / "allow-arp.xml").write_text("<filter/>")
    (etc / "qemu" / "networks").mkdir(parents=True)
    (etc / "qemu" / "networks" / "default.xml").write_text("<network/>")
    (etc / "storage").mkdir()
    (etc / "storage" / "default.xml").write_text("<pool/>")
    (etc / "libvirtd.conf").write_text("# host's\n")
    (etc / "qemu.conf").write_text("# host's own qemu.conf\n")
    return etc


@pytest.fixture
def lab(tmp_path, system, host_etc):
    """(hypervisor, runner, processes, clock) with a state directory under tmp_path."""
    clock = FakeClock()
    processes = FakeProcessTable(clock)
    directory = tmp_path / "state"
    runner = LibvirtdRunner(processes, directory / "libvirtd.pid")
    hypervisor = Hypervisor(runner, processes, clock, directory, NS, system, host_etc)
    yield hypervisor, runner, processes, clock
    runner.assert_done()


def expect_start(runner):
    runner.expect([IP, "netns", "list"], stdout="other-lab (id: 0)\n")
    runner.expect([IP, "netns", "add", NS])
    runner.expect([IP, "-n", NS, "link", "set", "lo", "up"])


def test_start_makes_the_namespace_then_starts_libvirtd_with_the_state_mounted(lab):
    """netns add, lo up, libvirtd in a private mount namespace, then virsh version inside."""
    hypervisor, runner, _, _ = lab
    directory = hypervisor.directory
    expect_start(runner)
    expect_answering(runner, stdout="Using library: libvirt 9.0.0\n")
    hypervisor.start()
    [spawned] = runner.spawned
    assert spawned.argv == (
        IP,
        "netns",
        "exec",
        NS,
        "/usr/bin/unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        vagrant_host.MOUNT_THEN_EXEC,
        "stackha-vagrant-mounts",
        f"{directory}/etc-libvirt",
        "/etc/libvirt",
        f"{directory}/lib",
        "/var/lib/libvirt",
        f"{directory}/log",
        "/var/log/libvirt",
        f"{directory}/cache",
        "/var/cache/libvirt",
        "--",
        "/usr/sbin/libvirtd",
        "--pid-file",
        f"{directory}/libvirtd.pid",
    )
    assert spawned.output_path == f"{directory}/libvirtd.log"
    # the script's text is the constant: no path was written into it
    assert str(directory) not in vagrant_host.MOUNT_THEN_EXEC


def test_start_lays_out_a_private_copy_of_the_hosts_libvirt_configuration(lab):
    """The host's configuration copied, domains, pools and secrets fresh, our qemu.conf."""
    hypervisor, runner, _, _ = lab
    expect_start(runner)
    expect_answering(runner)
    hypervisor.start()
    etc = hypervisor.directory / "etc-libvirt"
    assert (etc / "libvirtd.conf").read_text() == "# host's\n"
    assert (etc / "nwfilter" / "allow-arp.xml").exists()
    assert [list((etc / d).iterdir()) for d in ("qemu", "storage", "secrets")] == [[], [], []]
    assert (etc / "secrets").stat().st_mode & 0o777 == 0o700
    assert (etc / "qemu.conf").read_text() == vagrant_host.QEMU_CONF
    for setting in ('security_driver = "none"', 'stdio_handler = "file"', "namespaces = [ ]"):
        assert setting in vagrant_host.QEMU_CONF
    for entry in ("lib", "log", "cache", "vagrant.d", "home"):
        assert (hypervisor.directory / entry).is_dir()


def test_start_waits_until_libvirtd_answers(lab):
    """virsh version failing at first (socket not there yet) is polled again."""
    hypervisor, runner, _, clock = lab
    expect_start(runner)
    runner.expect(VIRSH_VERSION, returncode=1, stderr="error: failed to connect")
    expect_answering(runner)
    hypervisor.start()
    assert clock.sleeps == [0.5]


def test_start_without_libvirtd_names_the_debian_packages(lab, system):
    hypervisor, _, _, _ = lab
    (system / "usr/sbin/libvirtd").unlink()
    with pytest.raises(LabError) as raised:
        hypervisor.start()
    assert str(raised.value) == (
        "missing Debian packages: libvirt-daemon-system libvirt-daemon-driver-qemu "
        "(/usr/sbin/libvirtd); install them with apt"
    )


def test_start_refuses_when_the_namespace_exists_and_says_how_to_remove_it(lab):
    hypervisor, runner, _, _ = lab
    runner.expect([IP, "netns", "list"], stdout=f"{NS} (id: 3)\n")
    with pytest.raises(
        LabError, match=f"kill each pid of 'ip netns pids {NS}', then 'ip netns del"
    ):
        hypervisor.start()
    assert not hypervisor.directory.exists()


@pytest.mark.parametrize("under", ["/run/stackha", "/var/lib/libvirt", "/etc/libvirt/x"])
def test_start_refuses_a_state_directory_that_its_mounts_would_hide(tmp_path, system, under):
    hypervisor = Hypervisor(FakeRunner(), None, FakeClock(), vagrant_host.Path(under), NS, system)
    with pytest.raises(LabError, match="which libvirtd's mount namespace replaces"):
        hypervisor.start()


def test_a_libvirtd_that_never_answers_is_ended_with_its_logs_last_line(lab):
    """At the deadline: the log's last line in the error, the namespace's processes ended by
    pid and the namespace deleted; the log kept for the operator."""
    hypervisor, runner, processes, _ = lab
    expect_start(runner)
    for _ in range(3):  # at 0, 0.5 and 1 s of a 1 s deadline
        runner.expect(VIRSH_VERSION, returncode=1, stderr="error: failed to connect")
    runner.expect([IP, "netns", "pids", NS], stdout=f"{LIBVIRTD_PID}\n")
    runner.expect([IP, "netns", "del", NS])
    hypervisor.directory.mkdir()
    (hypervisor.directory / "libvirtd.log").write_text("starting\nerror : cannot bind socket\n\n")
    with pytest.raises(LabError) as raised:
        hypervisor.start(timeout=1.0)
    assert str(raised.value).startswith(
        "libvirtd not answering 'virsh version' within 1s: error : cannot bind socket (log: "
    )
    assert (LIBVIRTD_PID, signal.SIGTERM) in [(pid, sig) for pid, sig, _ in processes.signals]
    assert processes.state(LIBVIRTD_PID) is None
    assert (hypervisor.directory / "libvirtd.log").exists()


def test_a_libvirtd_that_exits_at_start_is_reported_at_once(tmp_path, system, host_etc):
    clock = FakeClock()
    processes = FakeProcessTable(clock)
    directory = tmp_path / "state"
    runner = LibvirtdRunner(processes, directory / "libvirtd.pid", starts=False)
    hypervisor = Hypervisor(runner, processes, clock, directory, NS, system, host_etc)
    expect_start(runner)
    runner.expect([IP, "netns", "pids", NS], stdout="")
    runner.expect([IP, "netns", "del", NS])
    with pytest.raises(LabError, match=r"^libvirtd exited at start: \(no log\)"):
        hypervisor.start()
    runner.assert_done()


def test_run_enters_libvirtds_namespaces_in_the_directory_with_vagrant_home(lab):
    """nsenter -m -n into libvirtd, --wd for cwd, VAGRANT_HOME and HOME in the state dir."""
    hypervisor, runner, _, _ = lab
    expect_start(runner)
    expect_answering(runner)
    hypervisor.start()
    runner.expect(
        [NSENTER, "-t", str(LIBVIRTD_PID), "-m", "-n", "--wd=/srv/vagrant", "--"]
        + ["vagrant", "up", "--provider=libvirt"]
    )
    hypervisor.run(
        ["vagrant", "up", "--provider=libvirt"],
        cwd="/srv/vagrant",
        env={"VAGRANT_LOG": "info"},
        timeout=1800,
    )
    assert runner.environments[-1] == {
        "HOME": f"{hypervisor.directory}/home",
        "VAGRANT_HOME": f"{hypervisor.directory}/vagrant.d",
        "VAGRANT_LOG": "info",
    }


def test_run_finds_libvirtd_from_its_pid_file_in_another_process(lab):
    """A second Hypervisor on the same directory (a later command) reaches the same libvirtd;
    a pid file naming something that is not libvirtd is refused."""
    hypervisor, runner, processes, clock = lab
    hypervisor.directory.mkdir()
    hypervisor.pid_file.write_text("77\n")
    processes.add(77, FakeProcess("libvirtd"))
    runner.expect([NSENTER, "-t", "77", "-m", "-n", "--", "/usr/bin/virsh", "list", "--all"])
    later = Hypervisor(runner, processes, clock, hypervisor.directory)
    later.run(["/usr/bin/virsh", "list", "--all"], timeout=30)
    processes.processes[77] = FakeProcess("bash")
    with pytest.raises(LabError, match="no hypervisor running from .*: start it first"):
        later.run(["/usr/bin/virsh", "list"], timeout=30)


def test_stop_ends_only_the_namespaces_processes_by_pid_and_is_idempotent(lab):
    """TERM to each pid of ip netns pids, KILL to the one still there, none to the host's
    qemu; the namespace deleted; the state removed; a second stop does nothing more."""
    hypervisor, runner, processes, clock = lab
    expect_start(runner)
    expect_answering(runner)
    hypervisor.start()
    processes.add(4002, FakeProcess("dnsmasq", dies_on={signal.SIGTERM: 0.1}))
    processes.add(4003, FakeProcess("qemu-system-x86"))  # deaf to TERM
    processes.add(900, FakeProcess("qemu-system-x86"))  # the host's own VM
    runner.expect([IP, "netns", "list"], stdout=f"{NS} (id: 0)\n")
    runner.expect([IP, "netns", "pids", NS], stdout=f"{LIBVIRTD_PID}\n4002\n4003\n")
    runner.expect([IP, "netns", "del", NS])
    hypervisor.stop()
    sent = [(pid, sig) for pid, sig, _ in processes.signals]
    assert sent == [
        (LIBVIRTD_PID, signal.SIGTERM),
        (4002, signal.SIGTERM),
        (4003, signal.SIGTERM),
        (4003, signal.SIGKILL),
    ]
    assert processes.pids() == [900]
    assert not hypervisor.directory.exists()
    hypervisor.stop()  # nothing of its own left: no command


def test_stop_leaves_what_it_did_not_write(lab):
    """Only start's entries go: a file of someone else's keeps the directory."""
    hypervisor, runner, _, _ = lab
    expect_start(runner)
    expect_answering(runner)
    hypervisor.start()
    (hypervisor.directory / "notes.txt").write_text("mine")
    runner.expect([IP, "netns", "list"], stdout=f"{NS}\n")
    runner.expect([IP, "netns", "pids", NS], stdout=f"{LIBVIRTD_PID}\n")
    runner.expect([IP, "netns", "del", NS])
    hypervisor.stop()
    assert [p.name for p in hypervisor.directory.iterdir()] == ["notes.txt"]


def test_stop_says_which_process_survived_sigkill(lab):
    hypervisor, runner, processes, _ = lab
    (hypervisor.directory / "etc-libvirt").mkdir(parents=True)
    processes.add(4009, FakeProcess("qemu-system-x86", state="D"))
    processes.processes[4009].dies_on = {signal.SIGKILL: 1000.0}  # stuck in the kernel
    runner.expect([IP, "netns", "list"], stdout=f"{NS}\n")
    runner.expect([IP, "netns", "pids", NS], stdout="4009\n")
    with pytest.raises(LabError, match=f"namespace {NS}: lab processes gone not reached"):
        hypervisor.stop(timeout=5)


def test_a_refused_start_leaves_another_hypervisors_namespace_alone(lab):
    """start refuses a namespace that exists; stop of that directory then ends nothing (the
    namespace is another lab's), and says the namespace is taken."""
    hypervisor, runner, processes, _ = lab
    processes.add(4100, FakeProcess("libvirtd"))
    runner.expect([IP, "netns", "list"], stdout=f"{NS}\n")
    with pytest.raises(LabError, match=f"network namespace {NS} already exists"):
        hypervisor.start()
    runner.expect([IP, "netns", "list"], stdout=f"{NS}\n")
    assert hypervisor.namespace_taken()
    hypervisor.stop()
    assert processes.signals == []
    assert processes.pids() == [4100]


CPUINFO_VMX = "processor\t: 0\nflags\t\t: fpu vme de pse msr vmx sse2\n\nprocessor\t: 1\n"
CPUINFO_PVM = "processor\t: 0\nflags\t\t: fpu vme de pse msr hypervisor sse2\n"


@pytest.mark.parametrize(
    ("cpuinfo", "has_kvm", "expected"),
    [
        (CPUINFO_VMX, True, "kvm"),
        (CPUINFO_VMX.replace("vmx", "svm"), True, "kvm"),
        (CPUINFO_PVM, True, "tcg"),  # these machines: a /dev/kvm but no vmx/svm
        (CPUINFO_VMX, False, "tcg"),
    ],
)
def test_acceleration_needs_both_a_usable_dev_kvm_and_the_cpu_flag(
    tmp_path, cpuinfo, has_kvm, expected
):
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    kvm = tmp_path / "kvm"
    if has_kvm:
        kvm.write_text("")
    assert acceleration(str(tmp_path / "cpuinfo"), str(kvm)) == expected


def test_acceleration_without_cpuinfo_is_tcg(tmp_path):
    (tmp_path / "kvm").write_text("")
    assert acceleration(str(tmp_path / "absent"), str(tmp_path / "kvm")) == "tcg"


def test_the_tcg_wrapper_rewrites_only_the_argument_tcg_and_keeps_the_others(tmp_path):
    """vagrant/qemu-tcg (the Vagrantfile's emulator_path under TCG), run for real by /bin/sh
    against a fake qemu printing its arguments, one per line."""
    fake_qemu = tmp_path / "qemu"
    fake_qemu.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\nexit 3\n')
    fake_qemu.chmod(0o755)
    assert TCG_WRAPPER.stat().st_mode & 0o111 == 0o111, "the Vagrantfile's emulator_path"
    text = TCG_WRAPPER.read_text()
    assert text.count(vagrant_host.QEMU) == 1
    wrapper = tmp_path / "qemu-tcg"
    wrapper.write_text(text.replace(vagrant_host.QEMU, str(fake_qemu)))
    wrapper.chmod(0o755)
    arguments = ["-name", "guest=a b", "-accel", "tcg", "-machine", "accel=tcg", "tcg-x", ""]
    result = subprocess.run(
        [str(wrapper), *arguments], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode == 3  # exec'd: qemu's own exit status
    assert result.stdout.split("\n")[:-1] == [
        "-name",
        "guest=a b",
        "-accel",
        "tcg,tb-size=128",
        "-machine",
        "accel=tcg",
        "tcg-x",
        "",
    ]


def test_a_failed_cleanup_after_a_failed_start_keeps_the_starts_reason_first(lab):
    hypervisor, runner, _, _ = lab
    expect_start(runner)
    runner.expect(VIRSH_VERSION, returncode=1)
    runner.expect(VIRSH_VERSION, returncode=1)
    runner.expect([IP, "netns", "pids", NS], returncode=1, stderr="Cannot open network namespace")
    with pytest.raises(LabError) as raised:
        hypervisor.start(timeout=0.5)
    assert str(raised.value).startswith("libvirtd not answering 'virsh version' within 0.5s: ")
    assert "; cleaning up after it: ip netns pids stackha-vagrant: " in str(raised.value)


def test_a_pool_that_cannot_be_defined_fails_the_start_and_leaves_nothing(lab):
    """The start names the virsh step and its error; libvirtd and the namespace are ended."""
    hypervisor, runner, processes, _ = lab
    expect_start(runner)
    runner.expect(VIRSH_VERSION)
    runner.expect(
        [*VIRSH_VERSION[:-1], *POOL_STEPS[0]], returncode=1, stderr="error: pool exists\n"
    )
    runner.expect([IP, "netns", "pids", NS], stdout=f"{LIBVIRTD_PID}\n")
    runner.expect([IP, "netns", "del", NS])
    with pytest.raises(LabError, match=r"virsh pool-define-as default dir .*: error: pool"):
        hypervisor.start()
