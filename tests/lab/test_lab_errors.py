"""Bad starts of the lab: a clear one-line error, and nothing half-made left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stackha.lab import lab as lab_module
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.ocf.daemon import ProcTable, is_alive
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


def live_holders():
    """Live (not zombie) lab processes on this machine: namespace holders, sshd, simulators."""
    table = ProcTable()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not is_alive(table, int(entry.name)):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        name = table.name(int(entry.name))
        if name in ("tini", "unshare", "nsenter", "sshd") or "stackha.lab." in command:
            found.add(int(entry.name))
    return found


@pytest.mark.parametrize(
    "program",
    ["/bin/hostname", "/usr/bin/ssh-keygen"],
    ids=["inside-node-boot", "after-nodes-before-pdu"],
)
def test_a_bring_up_that_fails_half_way_leaves_nothing(tmp_path, program):
    """Fail inside node1's boot, or after every node and BMC runs: nothing may stay."""
    before = live_holders()
    directory = tmp_path / "lab"
    lab = Lab(str(directory), runner=FailingRunner(program))
    with pytest.raises(LabError, match="injected"):
        lab.up(nodes=2, subnet="192.168.217.0/24", timeout=60)
    assert live_holders() - before == set()
    assert not directory.exists()
