"""Bad starts of the lab: a clear one-line error, and nothing half-made left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from stackha.lab import lab as lab_module
from stackha.lab import package
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.process import ProcTable, is_alive
from stackha.runner import CommandError, SubprocessRunner

STACKHA = str(Path(sys.executable).parent / "stackha")


def test_not_root_is_one_line_that_says_what_to_do(tmp_path):
    tmp_path.chmod(0o755)
    result = subprocess.run(
        [
            "runuser",
            "-u",
            "nobody",
            "--",
            STACKHA,
            "lab",
            "--dir",
            str(tmp_path / "lab"),
            "up",
            "--nodes",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "stackha lab: error: the lab needs root (namespaces, mounts, a bridge): run it as root"
    ]
    assert not (tmp_path / "lab").exists()


def test_a_missing_package_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(lab_module.REQUIRED, "/usr/sbin/no-such-daemon", "no-such-package")
    with pytest.raises(
        LabError,
        match=r"missing Debian packages: no-such-package "
        r"\(/usr/sbin/no-such-daemon\); run: make deps",
    ):
        Lab(str(tmp_path / "lab")).up(nodes=1)
    assert not (tmp_path / "lab").exists()


def test_a_bad_subnet_or_size_is_refused_before_anything_is_made(tmp_path):
    with pytest.raises(LabError, match="too small"):
        Lab(str(tmp_path / "lab")).up(nodes=3, subnet="192.168.213.0/28")
    with pytest.raises(LabError, match="1 to 64 nodes"):
        Lab(str(tmp_path / "lab")).up(nodes=0)
    assert not (tmp_path / "lab").exists()


class FailingRunner(SubprocessRunner):
    """The real runner, except that one program fails: a bring-up broken half-way."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def run(self, argv, **kwargs):
        if self.program in argv:
            raise CommandError(f"{self.program} failed (injected)")
        return super().run(argv, **kwargs)


def live_lab_processes():
    """Live (not zombie) processes this test process started, down to its grandchildren.

    Only our own descendants count: another lab may be running on the machine.
    """
    table = ProcTable()
    found, todo = set(), [os.getpid()]
    while todo:
        for child in table.children(todo.pop()):
            if is_alive(table, child):
                found.add(child)
            todo.append(child)
    return found


@pytest.mark.parametrize(
    "program",
    ["/bin/hostname", "/usr/bin/ssh-keygen"],
    ids=["inside-node-boot", "after-nodes-before-pdu"],
)
def test_a_bring_up_that_fails_half_way_leaves_nothing(packaged, tmp_path, program):
    """Fail inside node1's boot, or after every node and BMC runs: nothing may stay."""
    before = live_lab_processes()
    directory = tmp_path / "lab"
    lab = Lab(str(directory), runner=FailingRunner(program))
    with pytest.raises(LabError, match="injected"):
        lab.up(nodes=2, subnet="192.168.217.0/24", timeout=60, deb=str(packaged))
    assert live_lab_processes() - before == set()
    assert not directory.exists()


def test_a_package_apt_refuses_is_named_and_nothing_is_left(packaged, tmp_path):
    """A .deb that is not a package: apt's reason in one line, and no lab."""
    bogus = tmp_path / "stackha_9.9.9_all.deb"
    bogus.write_bytes(b"not a Debian package\n")
    before = live_lab_processes()
    with pytest.raises(LabError, match=r"^apt could not install stackha_9.9.9_all.deb: "):
        Lab(str(tmp_path / "lab")).up(nodes=1, subnet="192.168.217.0/24", deb=str(bogus))
    assert live_lab_processes() - before == set()
    assert not (tmp_path / "lab").exists()
    assert package.installed_version(SubprocessRunner()) == package.deb_version(packaged)


def test_up_installs_the_package_and_down_purges_what_up_installed(packaged, tmp_path):
    """With no stackha package on the host, up installs the one given (the nodes run its
    agents) and down takes it away again; a package that was there before stays (the other
    lab tests' labs)."""
    runner = SubprocessRunner()
    package.remove(runner)
    try:
        lab = Lab(str(tmp_path / "lab"))
        lab.up(nodes=1, subnet="192.168.217.0/24", timeout=120, deb=str(packaged))
        try:
            assert package.installed_version(runner) == package.deb_version(packaged)
            agent = "/usr/lib/ocf/resource.d/stackha/haproxy"
            owner = runner.run(["dpkg-query", "-S", agent], timeout=30)
            assert owner.stdout.startswith("stackha: "), owner
            inside = lab.node_runner("node1").run([agent, "meta-data"], timeout=30)
            assert inside.ok and 'name="haproxy"' in inside.stdout
            assert Path(agent).read_text().splitlines()[0] == "#!/usr/bin/python3 -IS"
        finally:
            lab.down()
        assert package.installed_version(runner) is None
        assert not Path("/usr/lib/ocf/resource.d/stackha").exists()
    finally:
        package.install(runner, packaged)
