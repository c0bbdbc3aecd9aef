"""stackha install/uninstall against a scratch OCF root."""

import os
import sys

from stackha.install import agent_files, fence_agent_files, install, uninstall


def test_install_puts_every_agent_in_the_provider_dir_with_our_interpreter(tmp_path):
    (tmp_path / "sbin").mkdir()
    written = install(str(tmp_path), str(tmp_path / "sbin"))
    names = sorted(os.path.basename(e.path) for e in written)
    assert names == sorted(p.name for p in agent_files() + fence_agent_files())
    fence = tmp_path / "sbin" / "fence_stackha_ipmi"
    assert fence.read_text().splitlines()[0] == f"#!{sys.executable} -I"
    agent = tmp_path / "resource.d" / "stackha" / "haproxy"
    assert agent.read_text().splitlines()[0] == f"#!{sys.executable} -I"
    assert os.stat(agent).st_mode & 0o777 == 0o755


def test_uninstall_removes_exactly_what_install_wrote(tmp_path):
    (tmp_path / "sbin").mkdir(exist_ok=True)
    install(str(tmp_path), str(tmp_path / "sbin"))
    provider = tmp_path / "resource.d" / "stackha"
    mine = provider / "operator-notes"
    mine.write_text("not ours")
    removal = uninstall(str(tmp_path))
    assert sorted(os.listdir(provider)) == ["operator-notes"]
    assert len(removal.removed) == len(agent_files()) + len(fence_agent_files())
    assert list((tmp_path / "sbin").iterdir()) == []


def test_uninstall_keeps_a_file_changed_since_install(tmp_path):
    (tmp_path / "sbin").mkdir(exist_ok=True)
    install(str(tmp_path), str(tmp_path / "sbin"))
    agent = tmp_path / "resource.d" / "stackha" / "haproxy"
    agent.write_text("#!/bin/sh\n# edited by hand\n")
    removal = uninstall(str(tmp_path))
    assert removal.kept == [str(agent)]
    assert agent.exists()


def test_uninstall_of_a_clean_tree_removes_the_provider_dir(tmp_path):
    (tmp_path / "sbin").mkdir(exist_ok=True)
    install(str(tmp_path), str(tmp_path / "sbin"))
    uninstall(str(tmp_path))
    assert not (tmp_path / "resource.d" / "stackha").exists()


def test_cli_reports_a_permission_problem_in_one_line(tmp_path):
    """Not root (or no write access): one line that says what to do, exit 1, no traceback."""
    import subprocess

    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(root, 0o555)
    command = [sys.executable, "-m", "stackha.cli", "install", "--ocf-root", str(root)]
    # a fence directory of its own: /usr/sbin may hold the stackha package's fence agents,
    # which install refuses to overwrite before it tries anything
    command += ["--sbin-dir", str(tmp_path / "sbin")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--"] + command
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"stackha: error: cannot create {root}/resource.d/stackha: permission denied (run as root)"
    ]
