from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stackha.clock import SystemClock
from stackha.lab.vagrant_lab import VagrantLab
from stackha.process import ProcTable
from stackha.runner import SubprocessRunner

STACKHA = str(Path(sys.executable).parent / "stackha")
RELEASE = os.environ.get("STACKHA_VAGRANT_RELEASE", "trixie")
# cluster: Pacemaker, fencing and HAProxy, all this tier runs (its box builds faster)
PROFILE = os.environ.get("STACKHA_VAGRANT_PROFILE", "cluster")
BOX_DIR = os.environ.get("STACKHA_BOX_DIR", "/var/cache/stackha/boxes")
NODES = 3


@pytest.fixture(scope="session")
def vagrant_lab(stackha_deb, tmp_path_factory):
    """Three VMs of RELEASE from a box built here (cached while its list and packages hold),
    brought up as ``make vagrant-lab`` does (``stackha lab vagrant-up``), removed afterwards
    whatever happened (``stackha lab vagrant-down``)."""
    directory = tmp_path_factory.mktemp("vagrant") / "lab"
    argv = [STACKHA, "lab", "vagrant-up", "--lab-dir", str(directory), "--release", RELEASE]
    argv += ["--profile", PROFILE, "--nodes", str(NODES), "--box-dir", BOX_DIR]
    argv += ["--deb", str(stackha_deb)]
    started = time.monotonic()
    try:
        up = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        assert up.returncode == 0, up.stdout + up.stderr[-4000:]
        sys.stderr.write(
            f"\nvagrant lab: {up.stdout.strip()} ({time.monotonic() - started:.0f}s"
            f" with the box)\n{up.stderr}"
        )
        yield VagrantLab(SubprocessRunner(), ProcTable(), SystemClock(), directory)
    finally:
        down = subprocess.run(
            [STACKHA, "lab", "vagrant-down", "--lab-dir", str(directory)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert down.returncode == 0, down.stdout + down.stderr
