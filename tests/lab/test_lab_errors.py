"""Bad starts of the lab: a clear one-line error, and nothing half-made left behind."""

from __future__ import annotations

import os
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
def test_a_bring_up_that_fails_half_way_leaves_nothing(tmp_path, program):
    """Fail inside node1's boot, or after every node and BMC runs: nothing may stay."""
    before = live_lab_processes()
    directory = tmp_path / "lab"
    lab = Lab(str(directory), runner=FailingRunner(program))
    with pytest.raises(LabError, match="injected"):
        lab.up(nodes=2, subnet="192.168.217.0/24", timeout=60)
    assert live_lab_processes() - before == set()
    assert not directory.exists()
