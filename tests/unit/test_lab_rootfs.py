"""Root filesystems for lab nodes and package tests: the mirror read from apt's configuration,
the mmdebstrap command, the cache, and throw-away copies, at the runner boundary."""

from __future__ import annotations

import json
import signal

import pytest
from fakes import FakeProcess, FakeProcessTable
from stackha.lab import rootfs
from stackha.lab.namespaces import NSENTER, TINI, UNSHARE, LabError
from stackha.lab.rootfs import AptSource, Mirror, TreeCache

# This project's machines, as their /etc/apt/sources.list.d/debian.sources reads.
DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
THIRD_PARTY = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
Architectures: amd64
Signed-By: /usr/share/keyrings/nodesource.gpg

Types: deb
URIs: https://download.example.com/linux/debian
Suites: bookworm
Components: main
Signed-By: /etc/apt/keyrings/example.asc
"""
ONE_LINE = (
    "# the archive, from a local mirror\n"
    "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://mirror.example/debian/ trixie main contrib non-free-firmware\n"
    "deb-src http://mirror.example/debian trixie main\n"
    "deb http://mirror.example/debian trixie-updates main  # the point releases between\n"
    "deb http://security.example/debian-security trixie-security main\n"
)
SUITE = "bookworm"
TOOLS = ("pcs", "pacemaker", "haproxy")
MIRROR = Mirror(
    "http://deb.debian.org/debian", ("main",), True, "http://deb.debian.org/debian-security"
)


def test_deb822_sources_give_one_entry_per_type_and_uri():
    """Comments between fields are skipped, every suite of a paragraph is kept."""
    assert rootfs.parse_deb822(DEB822) == [
        AptSource(
            "deb",
            "http://deb.debian.org/debian",
            ("bookworm", "bookworm-updates"),
            ("main",),
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
        AptSource(
            "deb",
            "http://deb.debian.org/debian-security",
            ("bookworm-security",),
            ("main",),
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
    ]


def test_deb822_skips_disabled_paragraphs_and_keeps_types_and_uris_apart():
    """Enabled: no is no source; two types times two URIs are four entries; an inline key's
    continuation lines do not end the paragraph."""
    text = """\
Types: deb deb-src
URIs: http://a.example/debian http://b.example/debian
Suites: trixie
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGP...
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://c.example/debian
Suites: trixie
Components: main
"""
    sources = rootfs.parse_deb822(text)
    assert [(s.kind, s.uri) for s in sources] == [
        ("deb", "http://a.example/debian"),
        ("deb", "http://b.example/debian"),
        ("deb-src", "http://a.example/debian"),
        ("deb-src", "http://b.example/debian"),
    ]
    assert sources[0].signed_by is not None
    assert sources[0].signed_by.endswith("-----END PGP PUBLIC KEY BLOCK-----")


def test_one_line_sources_read_options_comments_and_deb_src():
    """[options] are read (signed-by), comments are dropped wherever they start."""
    assert rootfs.parse_one_line(ONE_LINE) == [
        AptSource(
            "deb",
            "http://mirror.example/debian/",
            ("trixie",),
            ("main", "contrib", "non-free-firmware"),
            "/usr/share/keyrings/debian-archive-keyring.gpg",
        ),
        AptSource("deb-src", "http://mirror.example/debian", ("trixie",), ("main",)),
        AptSource("deb", "http://mirror.example/debian", ("trixie-updates",), ("main",)),
        AptSource(
            "deb", "http://security.example/debian-security", ("trixie-security",), ("main",)
        ),
    ]


def test_the_mirror_of_this_projects_machines(tmp_path):
    """sources.list.d/*.sources and *.list are read, a file of another ending is not, and
    third-party repositories (another suite, or the host's suite signed by another key) are
    passed over."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "a-thirdparty.sources").write_text(THIRD_PARTY)
    (apt / "sources.list.d" / "debian.sources").write_text(DEB822)
    (apt / "sources.list.d" / "cloud.list.disabled-by-farm").write_text(
        "deb http://disabled.example/debian bookworm main\n"
    )
    os_release = tmp_path / "os-release"
    os_release.write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
    )
    assert rootfs.machine_mirror(str(apt), str(os_release)) == MIRROR


def test_a_one_line_mirror_gives_the_other_suites_of_another_release():
    """A Debian 13 host's mirror builds a Debian 12 tree: its -updates and -security too."""
    mirror = rootfs.find_mirror(rootfs.parse_one_line(ONE_LINE), "trixie")
    assert mirror == Mirror(
        "http://mirror.example/debian", ("main",), True, "http://security.example/debian-security"
    )
    assert mirror.source_lines("bookworm") == [
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://security.example/debian-security bookworm-security main",
    ]


def test_without_updates_or_security_in_the_config_the_tree_has_neither():
    """A host that uses neither suite gets a tree without them; unstable never has them."""
    mirror = rootfs.find_mirror(
        rootfs.parse_one_line("deb http://mirror.example/debian bookworm main\n"), "bookworm"
    )
    assert mirror.source_lines("trixie") == ["deb http://mirror.example/debian trixie main"]
    assert MIRROR.source_lines("sid") == ["deb http://deb.debian.org/debian sid main"]


def test_no_debian_archive_in_the_config_is_an_error_naming_where_it_looked():
    with pytest.raises(LabError, match=r"no Debian archive for bookworm .*/etc/apt/sources.list"):
        rootfs.find_mirror(rootfs.parse_deb822(THIRD_PARTY.replace("bookworm", "x")), "bookworm")


def test_the_hosts_codename_comes_from_os_release(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME="trixie"\n')
    assert rootfs.host_codename(str(path)) == "trixie"
    path.write_text('NAME="Debian GNU/Linux"\nVERSION_ID="13"\n')
    with pytest.raises(LabError, match="names no VERSION_CODENAME"):
        rootfs.host_codename(str(path))


def test_the_cache_name_changes_with_the_package_list_and_the_mirror_only():
    """The order and repetition of packages do not matter; a package or the mirror do."""
    name = rootfs.tree_name(SUITE, TOOLS, MIRROR)
    assert name.startswith("bookworm-")
    assert rootfs.tree_name(SUITE, ("haproxy", "pcs", "pacemaker", "pcs"), MIRROR) == name
    assert rootfs.tree_name(SUITE, (*TOOLS, "corosync"), MIRROR) != name
    other = Mirror("http://mirror.example/debian", ("main",), True, MIRROR.security)
    assert rootfs.tree_name(SUITE, TOOLS, other) != name
    assert rootfs.tree_name("trixie", TOOLS, MIRROR).startswith("trixie-")


@pytest.fixture
def cache(tmp_path, fake_runner):
    mmdebstrap = tmp_path / "mmdebstrap"
    mmdebstrap.write_text("#!/bin/sh\n")
    mmdebstrap.chmod(0o755)
    return TreeCache(fake_runner, str(tmp_path / "cache"), str(mmdebstrap))


def expected_build(cache, packages=TOOLS):
    name = rootfs.tree_name(SUITE, packages, MIRROR)
    building = cache.cache_dir / f".{name}.build"
    include = ["--include=" + ",".join(sorted(packages))] if packages else []
    return building, [
        UNSHARE,
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        cache.mmdebstrap,
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        '--aptopt=APT::Install-Recommends "false"',
        "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
        *include,
        "bookworm",
        str(building),
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    ]


def test_a_tree_is_built_once_with_policy_rc_d_and_reused(cache, fake_runner):
    """mmdebstrap in a namespace that dies with it, root mode, no recommends; the tree gets a
    policy-rc.d that mmdebstrap would have deleted; the second call runs nothing."""
    building, argv = expected_build(cache)
    fake_runner.expect(argv, stderr="I: success in 28.9 seconds\n")
    tree = cache.tree(TOOLS, SUITE, MIRROR)
    assert tree == cache.cache_dir / rootfs.tree_name(SUITE, TOOLS, MIRROR)
    policy = tree / "usr/sbin/policy-rc.d"
    assert policy.read_text().endswith("exit 101\n")
    assert policy.stat().st_mode & 0o777 == 0o755
    assert tree.stat().st_mode & 0o777 == 0o755
    assert not building.exists()
    recorded = json.loads((cache.cache_dir / f"{tree.name}.json").read_text())
    assert recorded["packages"] == sorted(TOOLS)
    assert cache.tree(TOOLS, SUITE, MIRROR) == tree  # FakeRunner: no second command


def test_a_bare_tree_has_no_include(cache, fake_runner):
    """No packages: mmdebstrap's apt variant alone (essential packages and apt)."""
    _, argv = expected_build(cache, ())
    fake_runner.expect(argv)
    assert cache.tree((), SUITE, MIRROR).is_dir()


def test_a_failed_build_names_its_last_lines_and_leaves_nothing(cache, fake_runner):
    """A half-made tree is removed, and never becomes the cached one."""
    building, argv = expected_build(cache)
    output = "\n".join(f"I: step {n}" for n in range(10))
    fake_runner.expect(
        argv, returncode=1, stderr=f"{output}\nE: Unable to locate package pcs\nE: failed\n"
    )
    with pytest.raises(LabError) as raised:
        cache.tree(TOOLS, SUITE, MIRROR)
    assert str(raised.value) == (
        "mmdebstrap failed (exit 1) building the bookworm tree: "
        "I: step 7 | I: step 8 | I: step 9 | E: Unable to locate package pcs | E: failed"
    )
    assert not building.exists()
    assert not cache.path(SUITE, TOOLS, MIRROR).exists()


def test_a_build_left_by_a_killed_run_is_removed_before_building_again(cache, fake_runner):
    building, argv = expected_build(cache)
    (building / "usr").mkdir(parents=True)
    (building / "usr" / "half-made").write_text("")
    fake_runner.expect(argv)
    tree = cache.tree(TOOLS, SUITE, MIRROR)
    assert not (tree / "usr" / "half-made").exists()


def test_a_build_that_overruns_is_an_error(cache, fake_runner):
    building, argv = expected_build(cache)
    fake_runner.expect(argv, timed_out=True)
    with pytest.raises(LabError, match="mmdebstrap building the bookworm tree: .* within 60s"):
        cache.tree(TOOLS, SUITE, MIRROR, timeout=60)
    assert not building.exists()


def test_mmdebstrap_missing_is_an_error_saying_what_to_install(tmp_path, fake_runner):
    cache = TreeCache(fake_runner, str(tmp_path / "cache"), str(tmp_path / "no-mmdebstrap"))
    with pytest.raises(LabError, match="no-mmdebstrap not found: install the mmdebstrap package"):
        cache.tree(TOOLS, SUITE, MIRROR)


def test_nothing_is_removed_through_a_mount(tmp_path):
    """A recursive delete must never go into a bind mount of /dev: the check reads
    mountinfo's escaped mount points."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:5 / /dev rw - devtmpfs udev rw\n"
        "80 69 0:21 / /var/cache/a\\040tree/dev rw - devtmpfs udev rw\n"
    )
    assert rootfs.mounts_under("/var/cache/a tree", str(mountinfo)) == ["/var/cache/a tree/dev"]
    assert rootfs.mounts_under("/var/cache/a", str(mountinfo)) == []


HOLDER, INIT = 4001, 4002


@pytest.fixture
def processes(fake_clock):
    table = FakeProcessTable(fake_clock)
    table.add(HOLDER, FakeProcess("unshare", children=[INIT]))
    table.add(INIT, FakeProcess("tini"))
    return table


def in_namespace(*argv, pid=True):
    return [NSENTER, "-t", str(INIT), "-m", *(["-p"] if pid else []), "--", *argv]


def expect_mounts(fake_runner, tree, base, fail_at=None):
    for index, argv in enumerate(
        rootfs.overlay_mounts(str(tree), f"{base}/upper", f"{base}/work", f"{base}/merged")
    ):
        failing = index == fail_at
        fake_runner.expect(
            in_namespace(*argv),
            returncode=32 if failing else 0,
            stderr="mount: unknown filesystem type 'overlay'." if failing else "",
        )
        if failing:
            return


def test_a_scratch_root_runs_commands_chrooted_in_an_overlay_and_leaves_nothing(
    tmp_path, fake_runner, fake_clock, processes
):
    """The overlay (tree below, scratch dirs above) and /proc, /sys ro, /dev, tmpfs /run and
    /tmp are mounted in the namespace; commands are chrooted into it; afterwards the mounts are
    undone, the namespace's init is killed by pid and the scratch directory is gone."""
    tree = tmp_path / "tree"
    tree.mkdir(mode=0o755)
    base = tmp_path / f"stackha-scratch-{INIT}"
    merged = f"{base}/merged"
    assert rootfs.overlay_mounts(str(tree), "U", "W", "M")[:4] == [
        [
            "/bin/mount",
            "-t",
            "overlay",
            "-o",
            f"lowerdir={tree},upperdir=U,workdir=W",
            "overlay",
            "M",
        ],
        ["/bin/mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", "M/proc"],
        ["/bin/mount", "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", "M/sys"],
        ["/bin/mount", "--rbind", "/dev", "M/dev"],
    ]
    expect_mounts(fake_runner, tree, base)
    fake_runner.expect(
        in_namespace("/usr/sbin/chroot", merged, "dpkg-query", "-W", "pcs"), stdout="pcs\t0.11.5"
    )
    fake_runner.expect(in_namespace("/bin/umount", "--recursive", merged, pid=False))
    with rootfs.scratch_root(fake_runner, tree, str(tmp_path), processes, fake_clock) as root:
        assert (base / "upper").is_dir() and (base / "work").is_dir()
        assert str(root.path) == f"/proc/{INIT}/root{merged}"
        assert root.run(["dpkg-query", "-W", "pcs"], timeout=30).stdout == "pcs\t0.11.5"
    (spawned,) = fake_runner.spawned
    assert spawned.argv == (
        UNSHARE,
        "--mount",
        "--pid",
        "--fork",
        "--propagation",
        "private",
        "--",
        TINI,
        "-s",
        "--",
        "/bin/sleep",
        "infinity",
    )
    assert {(pid, signum) for pid, signum, _ in processes.signals} == {
        (HOLDER, signal.SIGKILL),
        (INIT, signal.SIGKILL),
    }
    assert not base.exists()


def test_a_failed_mount_is_an_error_and_still_leaves_nothing(
    tmp_path, fake_runner, fake_clock, processes
):
    tree = tmp_path / "tree"
    tree.mkdir(mode=0o755)
    base = tmp_path / f"stackha-scratch-{INIT}"
    expect_mounts(fake_runner, tree, base, fail_at=0)
    fake_runner.expect(
        in_namespace("/bin/umount", "--recursive", f"{base}/merged", pid=False), returncode=32
    )
    with pytest.raises(LabError, match="scratch root of .*: unknown filesystem type 'overlay'"):
        with rootfs.scratch_root(fake_runner, tree, str(tmp_path), processes, fake_clock):
            pytest.fail("the block must not run")
    assert {pid for pid, _, _ in processes.signals} == {HOLDER, INIT}
    assert not base.exists()


def test_a_failing_block_still_unmounts_ends_the_namespace_and_removes_the_copy(
    tmp_path, fake_runner, fake_clock, processes
):
    tree = tmp_path / "tree"
    tree.mkdir(mode=0o755)
    base = tmp_path / f"stackha-scratch-{INIT}"
    expect_mounts(fake_runner, tree, base)
    fake_runner.expect(in_namespace("/bin/umount", "--recursive", f"{base}/merged", pid=False))
    with pytest.raises(RuntimeError, match="the check failed"):
        with rootfs.scratch_root(fake_runner, tree, str(tmp_path), processes, fake_clock) as root:
            (base / "upper" / "written").write_text("")
            raise RuntimeError("the check failed")
    assert root.init_pid == INIT
    assert {pid for pid, _, _ in processes.signals} == {HOLDER, INIT}
    assert not base.exists()


def test_a_scratch_root_with_an_upper_dir_keeps_what_the_block_changed(
    tmp_path, fake_runner, fake_clock, processes
):
    """With ``upper_dir`` the overlay's upper and work directories are made there and stay,
    with the tree's mode on the upper (the merged root's mode); the rest goes as always."""
    tree = tmp_path / "tree"
    tree.mkdir()
    tree.chmod(0o755)
    layer = tmp_path / "layer"
    layer.mkdir()
    base = tmp_path / f"stackha-scratch-{INIT}"
    merged = f"{base}/merged"
    for argv in rootfs.overlay_mounts(str(tree), f"{layer}/upper", f"{layer}/work", merged):
        fake_runner.expect(in_namespace(*argv))
    fake_runner.expect(in_namespace("/bin/umount", "--recursive", merged, pid=False))
    with rootfs.scratch_root(
        fake_runner, tree, str(tmp_path), processes, fake_clock, upper_dir=layer
    ):
        (layer / "upper" / "installed").write_text("")
    assert (layer / "upper" / "installed").is_file() and (layer / "work").is_dir()
    assert (layer / "upper").stat().st_mode & 0o7777 == 0o755
    assert not base.exists()
