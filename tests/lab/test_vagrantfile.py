"""The Vagrant lab: its Vagrantfile validates, and it is provisioned by the namespace lab's code."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAGRANT = ROOT / "vagrant"


def test_vagrantfile_validates_offline():
    for nodes in ("3", "9"):
        result = subprocess.run(
            ["vagrant", "validate", "--ignore-provider"],
            cwd=VAGRANT,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "HOME": "/root", "STACKHA_NODES": nodes},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"node{nodes}: Ignoring provider config" in result.stdout


def test_provisioning_uses_the_shared_package_list_and_lab_code():
    """The two labs cannot drift: the VMs get the same packages (in stackha's box, or from a
    public box's network through the release's list, as namespace nodes) and the same
    generated files."""
    script = (VAGRANT / "provision.sh").read_text()
    assert "lib/stackha/lab/releases/$VERSION_CODENAME.list" in script
    assert '"[cluster]"' in script and '"[stack]"' in script
    assert 'stackha" lab corosync-conf' in script and 'stackha" lab hosts' in script
    assert "build/deb/stackha_*_all.deb" in script and "apt-get install" in script
    syntax = subprocess.run(
        ["sh", "-n", str(VAGRANT / "provision.sh")], capture_output=True, text=True, timeout=30
    )
    assert syntax.returncode == 0, syntax.stderr
