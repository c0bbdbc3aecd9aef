"""Lab nodes of a named release: the package lists, the node's own accounts, the mounts and the
pivot of its boot, the layer of the stackha packages, and the bad input of ``lab up``."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from stackha import cli
from stackha.lab import release
from stackha.lab.accounts import Accounts
from stackha.lab.lab import Lab
from stackha.lab.namespaces import LabError
from stackha.lab.node import Node
from stackha.services import api_catalog

CHECKOUT = Path(__file__).resolve().parents[2]

# the [stack] section brings the API services' packages (their records)
API_PACKAGES = [p for service in api_catalog.SERVICES for p in service.lab.packages]

PASSWD = """root:x:0:0:root:/root:/bin/bash
hacluster:x:100:101::/var/lib/pacemaker:/usr/sbin/nologin
keystone:x:106:110::/var/lib/keystone:/usr/sbin/nologin
"""
GROUP = """root:x:0:
haclient:x:101:
keystone:x:110:
"""


def tree(tmp_path, passwd=PASSWD, group=GROUP):
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(passwd)
    (root / "etc/group").write_text(group)
    root.chmod(0o755)
    return root


# -- package lists ---------------------------------------------------------------------------


def test_a_list_has_sections_comments_and_one_package_per_line():
    text = "# head\n\n[cluster]\npacemaker  # the CRM\ncorosync\n[stack]\n# db\nmariadb-server\n"
    assert release.parse_list(text, "x.list") == {
        "cluster": ["pacemaker", "corosync"],
        "stack": ["mariadb-server"],
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("pacemaker\n[cluster]\n", r"x.list:1: package 'pacemaker' before any \[section\]"),
        ("[cluster]\na\n[cluster]\nb\n", r"x.list:3: section \[cluster\] a second time"),
        ("[cluster]\npacemaker corosync\n", r"x.list:2: one package per line"),
    ],
)
def test_a_malformed_list_names_the_file_and_line(text, error):
    with pytest.raises(LabError, match=error):
        release.parse_list(text, "x.list")


@pytest.mark.parametrize("name", sorted(release.RELEASES))
def test_each_release_has_a_list_and_the_stack_profile_adds_to_the_cluster_one(name):
    cluster = release.packages(name, "cluster")
    stack = release.packages(name, "stack")
    assert "pacemaker" in cluster and "mariadb-server" not in cluster
    assert stack[: len(cluster)] == cluster and "rabbitmq-server" in stack
    assert len(set(stack)) == len(stack), "a package listed twice"


@pytest.mark.parametrize("name", sorted(release.RELEASES))
def test_the_vm_packages_are_the_stack_profiles_and_a_kernel_and_init_to_boot(name):
    """The Vagrant box's tree adds [vm] to the stack profile's; no boot loader in the guest."""
    stack = release.packages(name, "stack")
    vm = release.vm_packages(name)
    assert vm[: len(stack)] == stack
    kernel_and_init = ["linux-image-amd64", "initramfs-tools", "systemd-sysv", "udev", "sudo"]
    assert vm[len(stack) :] == kernel_and_init
    assert not any("extlinux" in package or "grub" in package for package in vm)


def test_the_namespace_labs_trees_keep_their_cache_names_and_the_vm_tree_has_its_own(tmp_path):
    """A [vm] section in the list changes nothing in the cluster and stack profiles' package
    lists, hence nothing in their trees' cache names; the box's tree is named by its own list."""
    from stackha.lab.rootfs import Mirror, tree_name

    lists = tmp_path / "lists"
    lists.mkdir()
    listed = "[cluster]\npacemaker\n[stack]\nmariadb-server\n"
    (lists / "trixie.list").write_text(listed)
    mirror = Mirror("http://deb.debian.org/debian")
    before = {
        p: tree_name("trixie", release.packages("trixie", p, lists), mirror)
        for p in ("cluster", "stack")
    }
    with pytest.raises(LabError, match=r"trixie.list: no packages in section \[vm\]"):
        release.vm_packages("trixie", lists_dir=lists)
    (lists / "trixie.list").write_text(listed + "[vm]\nlinux-image-amd64\n")
    after = {
        p: tree_name("trixie", release.packages("trixie", p, lists), mirror)
        for p in ("cluster", "stack")
    }
    assert after == before
    vm = tree_name("trixie", release.vm_packages("trixie", lists_dir=lists), mirror)
    assert vm not in after.values()
    assert release.vm_packages("trixie", lists_dir=lists) == [
        "pacemaker",
        "mariadb-server",
        *API_PACKAGES,
        "linux-image-amd64",
    ]
    # the cluster profile's box: the first section and [vm], its own tree
    cluster = release.vm_packages("trixie", "cluster", lists_dir=lists)
    assert cluster == ["pacemaker", "linux-image-amd64"]
    assert tree_name("trixie", cluster, mirror) not in (vm, *after.values())
    with pytest.raises(LabError, match="unknown profile 'all': one of cluster, stack"):
        release.vm_packages("trixie", "all", lists_dir=lists)


def debian_depends(package):
    """The Depends of a binary package in debian/control, without substitution variables or
    version constraints."""
    control = (CHECKOUT / "debian/control").read_text()
    paragraph = next(p for p in control.split("\n\n") if f"Package: {package}\n" in p)
    field = re.search(r"^Depends:(.*?)(?=^\S)", paragraph + "\nEnd:", re.S | re.M).group(1)
    names = [item.split("(")[0].strip() for item in field.replace("\n", " ").split(",")]
    return {name for name in names if name and not name.startswith("${")}


@pytest.mark.parametrize("name", sorted(release.RELEASES))
def test_the_cluster_section_has_every_dependency_of_the_stackha_packages(name):
    """The lab's layer is installed with dpkg, which fetches nothing: a Depends of the stackha
    or stackha-lab package missing from a release's [cluster] section would fail every lab of
    that release (python3 and python3-pyghmi come as ${python3:Depends})."""
    cluster = set(release.packages(name, "cluster"))
    wanted = (debian_depends("stackha") | debian_depends("stackha-lab")) - {"stackha"}
    wanted |= {"python3", "python3-lxml", "python3-pyghmi", "python3-pexpect"}
    assert wanted - cluster == set()


def test_an_unknown_release_or_profile_is_one_line_naming_the_choices():
    with pytest.raises(LabError, match=r"unknown release 'potato': .*bookworm .*trixie"):
        release.packages("potato")
    with pytest.raises(LabError, match=r"unknown profile 'all': one of cluster, stack"):
        release.packages("trixie", "all")


def test_lab_up_of_an_unknown_release_says_so_and_makes_nothing(tmp_path, capsys):
    directory = tmp_path / "lab"
    assert cli.main(["lab", "--dir", str(directory), "up", "--release", "sid"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown release 'sid'" in err, err
    assert not directory.exists()
    with pytest.raises(LabError, match="unknown profile"):
        Lab(str(directory)).up(release_name="trixie", profile="everything")
    assert not directory.exists()


def test_the_companion_lab_package_must_be_beside_the_stackha_one(tmp_path):
    deb = tmp_path / "stackha_1.2_all.deb"
    deb.write_bytes(b"")
    with pytest.raises(LabError, match=r"need stackha-lab_1.2_all.deb beside .*stackha_1.2"):
        release.lab_package(deb)
    (tmp_path / "stackha-lab_1.2_all.deb").write_bytes(b"")
    assert release.lab_package(deb) == tmp_path / "stackha-lab_1.2_all.deb"


# -- a node's own accounts -----------------------------------------------------------------


def test_owners_come_from_the_nodes_own_account_files(tmp_path):
    accounts = Accounts(tree(tmp_path))
    assert accounts.ids("hacluster", "haclient") == (100, 101)
    assert accounts.ids("keystone") == (106, 110)  # the user's own primary group
    assert accounts.has_user("keystone") and not accounts.has_user("nova")
    with pytest.raises(LabError, match=r"no user nova in .*tree/etc/passwd"):
        accounts.uid("nova")
    with pytest.raises(LabError, match=r"no group mysql in .*tree/etc/group"):
        accounts.gid("mysql")
    with pytest.raises(LabError, match=r"etc/passwd: no such file: not a root filesystem"):
        Accounts(tmp_path / "nothing").uid("root")


# -- a node of a release boots its own system ------------------------------------------------


def release_node(tmp_path, root_tree, layer):
    return Node(
        None,
        None,
        "node1",
        1,
        "192.0.2.11",
        24,
        tmp_path / "node1",
        lower=(str(layer), str(root_tree)),
    )


def test_a_release_node_mounts_its_layers_then_its_disks_inside_them(tmp_path):
    """The overlay of the layers (topmost first) under the node's upper, the node's proc, sysfs,
    /dev and /tmp, its disks and /etc/hosts bound over the merged system's, a fresh /run and
    /dev/shm, run directories owned by the tree's ids; then the pivot (not in these steps)."""
    root_tree, layer = tree(tmp_path), tmp_path / "layer/upper"
    node = release_node(tmp_path, root_tree, layer)
    (root_tree / "etc/keystone").mkdir()  # keystone is installed in the tree
    node.prepare("totem {}\n", b"key", "127.0.0.1 localhost\n", "<cib/>")
    home = tmp_path / "node1"
    merged = f"{home}/merged"
    steps = node.mount_steps()
    assert steps[0] == [
        "/bin/mount",
        "-t",
        "overlay",
        "-o",
        f"lowerdir={layer}:{root_tree},upperdir={home}/upper,workdir={home}/work",
        "overlay",
        merged,
    ]
    assert steps[1:5] == [
        ["/bin/mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{merged}/proc"],
        ["/bin/mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{merged}/sys"],
        ["/bin/mount", "--rbind", "/dev", f"{merged}/dev"],
        ["/bin/mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", f"{merged}/tmp"],
    ]
    binds = [step for step in steps if step[1] == "--bind"]
    assert [
        "/bin/mount",
        "--bind",
        f"{home}/var/lib/pacemaker",
        f"{merged}/var/lib/pacemaker",
    ] in binds
    assert ["/bin/mount", "--bind", f"{home}/etc/keystone", f"{merged}/etc/keystone"] in binds
    assert ["/bin/mount", "--bind", f"{home}/hosts", f"{merged}/etc/hosts"] in binds
    assert not any("nova" in step[-1] for step in binds), "nova is not in the tree"
    assert ["/bin/chown", "100:101", f"{merged}/run/crm"] in steps
    assert ["/bin/chown", "106:110", f"{merged}/run/keystone"] in steps
    assert steps[-1] == ["/bin/hostname", "node1"]
    # every mount lands inside the merged system, never on the host's own directories
    assert all(step[-1].startswith(merged) for step in steps if step[0] == "/bin/mount")
    # the disks the host writes carry the tree's ids, not the host's
    cib = home / "var/lib/pacemaker/cib/cib.xml"
    assert (cib.stat().st_uid, cib.stat().st_gid) == (100, 101)
    assert (home / "upper").stat().st_mode & 0o7777 == 0o755


def test_a_node_of_the_hosts_own_files_mounts_over_the_hosts_directories(tmp_path):
    node = Node(None, None, "node1", 1, "192.0.2.11", 24, tmp_path / "node1")
    steps = node.mount_steps()
    assert [
        "/bin/mount",
        "--bind",
        f"{tmp_path}/node1/var/lib/pacemaker",
        "/var/lib/pacemaker",
    ] in steps
    assert ["/bin/mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", "/run"] in steps
    assert not any("overlay" in step for step in steps)


def test_a_node_whose_layer_is_gone_does_not_boot_and_says_which(tmp_path):
    node = release_node(tmp_path, tree(tmp_path), tmp_path / "layer/upper")
    with pytest.raises(LabError, match=r"node node1: its system layer .*layer/upper is gone"):
        node.boot(None, None)


# -- the layer of the stackha packages ---------------------------------------------------------


def test_a_layer_that_dpkg_cannot_install_is_an_error_and_is_removed(tmp_path, monkeypatch):
    """dpkg's own reason, and no half-made layer."""
    from contextlib import contextmanager

    calls = []

    class Root:
        path = tmp_path / "scratch"

        def run(self, argv, timeout):
            calls.append(argv)
            from stackha.runner import Result

            return Result(tuple(argv), 1, "", "dpkg: dependency problems prevent configuration")

    @contextmanager
    def fake_scratch_root(runner, tree, processes=None, clock=None, upper_dir=None):
        assert upper_dir == tmp_path / "layer"
        (Root.path / "tmp").mkdir(parents=True)
        (upper_dir / "upper").mkdir()
        yield Root()

    monkeypatch.setattr(release, "scratch_root", fake_scratch_root)
    deb = tmp_path / "stackha_1.2_all.deb"
    deb.write_bytes(b"deb")
    with pytest.raises(LabError, match=r"dpkg could not install stackha_1.2_all.deb in the tree"):
        release.install_layer(None, tmp_path / "tree", tmp_path / "layer", [deb])
    assert calls == [["/usr/bin/dpkg", "--install", "/tmp/stackha_1.2_all.deb"]]
    assert (Root.path / "tmp/stackha_1.2_all.deb").read_bytes() == b"deb"
    assert not (tmp_path / "layer").exists()


# -- a node reinstalled with another release -------------------------------------------------


def test_disks_keep_their_owners_by_name_when_the_ids_change(tmp_path):
    """mysql is 102 on the old system and 100 on the new: a file of the old mysql becomes the
    new mysql's; an id the old system has no name for, and root, stay."""
    old = tmp_path / "old"
    new = tmp_path / "new"
    for root, passwd, group in (
        (
            old,
            "root:x:0:0::/:\nmysql:x:102:105::/:\nrabbitmq:x:108:110::/:\n",
            "root:x:0:\nmysql:x:105:\nrabbitmq:x:110:\n",
        ),
        (new, "root:x:0:0::/:\nmysql:x:100:100::/:\n", "root:x:0:\nmysql:x:100:\n"),
    ):
        (root / "etc").mkdir(parents=True)
        (root / "etc/passwd").write_text(passwd)
        (root / "etc/group").write_text(group)
    disk = tmp_path / "disk"
    (disk / "mysql").mkdir(parents=True)
    data = disk / "mysql/ibdata1"
    data.write_text("")
    stranger = disk / "stranger"
    stranger.write_text("")
    os.lchown(disk / "mysql", 102, 105)
    os.lchown(data, 102, 105)
    os.lchown(stranger, 4711, 4711)
    rabbit = disk / "rabbit"
    rabbit.write_text("")
    os.lchown(rabbit, 108, 110)  # rabbitmq is not installed on the new system
    Accounts(new).take_over(disk, Accounts(old))
    assert (data.stat().st_uid, data.stat().st_gid) == (100, 100)
    assert ((disk / "mysql").stat().st_uid, (disk / "mysql").stat().st_gid) == (100, 100)
    assert (stranger.stat().st_uid, stranger.stat().st_gid) == (4711, 4711)
    assert (rabbit.stat().st_uid, rabbit.stat().st_gid) == (108, 110)
    assert (disk.stat().st_uid, disk.stat().st_gid) == (0, 0)


def test_each_file_is_mapped_once_when_one_release_s_ids_are_the_other_s_names(tmp_path):
    """Ids that move in a chain between releases (seen here: bookworm's rabbitmq id is another
    user's on trixie, whose id is a third user's on bookworm): every directory at any depth,
    and every file, is mapped once. A directory mapped twice, once as its parent's entry and
    again when the walk entered it, came out owned by haproxy:sgx in the lab."""
    old = tmp_path / "old"
    new = tmp_path / "new"
    for root, names in (
        (old, ("rabbitmq", "haproxy", "mysql")),
        (new, ("mysql", "rabbitmq", "haproxy")),
    ):
        (root / "etc").mkdir(parents=True)
        ids = {name: 200 + i for i, name in enumerate(names)}
        (root / "etc/passwd").write_text("".join(f"{n}:x:{i}:{i}::/:\n" for n, i in ids.items()))
        (root / "etc/group").write_text("".join(f"{n}:x:{i}:\n" for n, i in ids.items()))
    disk = tmp_path / "disk"
    deep = disk / "mnesia/rabbit@node1/coordination"
    deep.mkdir(parents=True)
    (deep / "file").write_text("")
    paths = [disk, disk / "mnesia", disk / "mnesia/rabbit@node1", deep, deep / "file"]
    for path in paths:
        os.lchown(path, 200, 200)  # rabbitmq on the old system
    Accounts(new).take_over(disk, Accounts(old))
    assert {str(p.relative_to(tmp_path)): (p.stat().st_uid, p.stat().st_gid) for p in paths} == {
        str(p.relative_to(tmp_path)): (201, 201) for p in paths
    }


def test_a_reinstalled_node_boots_its_own_release_and_the_others_the_labs():
    from stackha.lab.lab import LabState, NodeState

    state = LabState(
        subnet="192.0.2.0/24",
        switch_address="192.0.2.1",
        release="bookworm",
        profile="stack",
        tree="/cache/bookworm-1",
        layer="/lab/layer",
    )
    old = NodeState("node1", 1, "192.0.2.11", "192.0.2.101")
    new = NodeState(
        "node2",
        2,
        "192.0.2.12",
        "192.0.2.102",
        release="trixie",
        tree="/cache/trixie-1",
        layer="/lab/layer-trixie",
    )
    assert Lab._lower(state, old) == ("/lab/layer/upper", "/cache/bookworm-1")
    assert Lab._lower(state, new) == ("/lab/layer-trixie/upper", "/cache/trixie-1")
    host = LabState(subnet="192.0.2.0/24", switch_address="192.0.2.1")
    assert Lab._lower(host, old) == ()


def test_reinstall_needs_a_lab_of_releases_and_a_known_release(tmp_path, capsys):
    from stackha.lab.lab import LabState

    lab = Lab(str(tmp_path))
    lab.save(LabState(subnet="192.0.2.0/24", switch_address="192.0.2.1"))
    with pytest.raises(LabError, match="unknown release 'potato'"):
        lab.reinstall("node1", "potato")
    with pytest.raises(LabError, match="reinstall needs a lab of releases"):
        lab.reinstall("node1", "trixie")


def test_status_names_a_node_of_another_release_than_the_labs():
    node = {
        "address": "192.168.213.11",
        "bmc": "192.168.213.111",
        "power": "on",
        "running": True,
        "linked": True,
        "daemons": {"corosync": "running", "pacemakerd": "running"},
    }
    status = {
        "directory": "/var/lib/stackha/lab",
        "subnet": "192.168.213.0/24",
        "release": "bookworm",
        "nodes": [
            {**node, "name": "node1", "release": "bookworm"},
            {**node, "name": "node2", "release": "trixie"},
        ],
        "cluster": None,
    }
    out = io.StringIO()
    cli._print_status(status, out)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("nodes run Debian bookworm unless their line names another")
    assert "Debian" not in lines[1]
    assert "pacemakerd=running  Debian trixie  BMC" in lines[2]
    # every node reinstalled: the first line says what they run now
    status["nodes"][0]["release"] = "trixie"
    out = io.StringIO()
    cli._print_status(status, out)
    assert out.getvalue().splitlines()[0].endswith("nodes run Debian trixie (made of bookworm)")
    # nodes of the lab's own release only: as before
    for entry in status["nodes"]:
        entry["release"] = "bookworm"
    out = io.StringIO()
    cli._print_status(status, out)
    assert out.getvalue().splitlines()[0].endswith("nodes run Debian bookworm")


def test_a_package_two_sections_name_is_in_the_tree_once(tmp_path):
    """rsync is Galera's ([stack]) and the box's ([vm]): one entry, where it comes first."""
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "trixie.list").write_text("[cluster]\npacemaker\n[stack]\nrsync\n[vm]\nudev\nrsync\n")
    assert release.vm_packages("trixie", lists_dir=lists) == [
        "pacemaker",
        "rsync",
        *API_PACKAGES,
        "udev",
    ]
    assert release.vm_packages("trixie", "cluster", lists_dir=lists) == [
        "pacemaker",
        "udev",
        "rsync",
    ]
