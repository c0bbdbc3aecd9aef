"""The Vagrant box of a release's tree: the disk's bytes, the guest's files, the box file, and
the build's commands at the runner boundary, undone in order when a step fails."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import tarfile
from pathlib import Path

import pytest
from fakes import FakeRunner
from stackha.lab import vagrant_box
from stackha.lab.namespaces import LabError, missing_programs
from stackha.lab.vagrant_box import (
    BLKID,
    CP,
    EXTLINUX,
    FSTRIM,
    GIB,
    GROUPADD,
    LOSETUP,
    MKFS_EXT4,
    QEMU_IMG,
    SYSTEMCTL,
    USERADD,
)

CHROOT = "/usr/sbin/chroot"
MOUNT = "/bin/mount"
UMOUNT = "/bin/umount"
DPKG = "/usr/bin/dpkg"
MIB = 1024 * 1024
BOOT_CODE = bytes(range(256)) * 2  # 512 bytes: only the first 440 are boot code
KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9 vagrant insecure public key\n"
UUID = "0b6d5f0e-2a8c-4c3e-9d55-3d1f5a0c7e21"
DEVICE = "/dev/loop7"
RELEASE = "trixie"


class ActingRunner(FakeRunner):
    """A FakeRunner whose commands also leave behind, where the build reads it, what the real
    program would: the tree copied onto the disk, extlinux's boot sector, a converted image."""

    def __init__(self) -> None:
        super().__init__()
        self.effects: dict[tuple[str, ...], object] = {}

    def expect(self, argv, returncode=0, stdout="", stderr="", effect=None, timed_out=False):
        super().expect(argv, returncode, stdout, stderr, timed_out=timed_out)
        if effect is not None:
            self.effects[tuple(argv)] = effect

    def run(self, argv, *, timeout, stdin=None, env=None, check=False):
        result = super().run(argv, timeout=timeout, stdin=stdin, env=env, check=check)
        effect = self.effects.pop(tuple(argv), None)
        if effect is not None and result.ok:
            effect()
        return result


@pytest.fixture
def runner():
    fake = ActingRunner()
    yield fake
    fake.assert_done()


def make_tree(root: Path, passwd_extra: str = "", group_extra: str = "") -> Path:
    """A small node tree as release.vm_tree gives one: a kernel and initramfs behind the
    /vmlinuz and /initrd.img links, accounts, some distribution units, the cache's policy-rc.d."""
    for directory in ("etc", "boot", "tmp", "proc", "sys", "dev", "usr/sbin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n_rpc:x:100:65534::/run/rpcbind:/usr/sbin/nologin\n"
        + passwd_extra
    )
    (root / "etc/group").write_text("root:x:0:\nhaclient:x:101:\n" + group_extra)
    (root / "etc/hostname").write_text("builder\n")
    (root / "etc/machine-id").write_text("")
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "boot/vmlinuz-6.12.0-1-amd64").write_bytes(b"kernel")
    (root / "boot/initrd.img-6.12.0-1-amd64").write_bytes(b"initrd")
    os.symlink("boot/vmlinuz-6.12.0-1-amd64", root / "vmlinuz")
    os.symlink("boot/initrd.img-6.12.0-1-amd64", root / "initrd.img")
    # the host keys openssh-server's postinst made in the tree: no VM may share them
    (root / "etc/ssh").mkdir()
    for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "ssh_host_rsa_key"):
        (root / "etc/ssh" / name).write_text("a key\n")
    (root / "etc/ssh/sshd_config").write_text("# kept\n")
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    # pcsd, keystone and the nova units are not in this tree: systemctl must not be asked
    for name in (
        "corosync",
        "pacemaker",
        "haproxy",
        "mariadb",
        "rabbitmq-server",
        "ssh",
        "systemd-networkd-wait-online",
    ):
        (units / f"{name}.service").write_text("[Unit]\n")
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree")


@pytest.fixture
def debs(tmp_path):
    made = []
    for name in ("stackha_1.2_all.deb", "stackha-lab_1.2_all.deb"):
        path = tmp_path / "debs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"deb " + name.encode())
        made.append(path)
    return made


class Build:
    """The paths of one build of the trixie box into ``out``."""

    def __init__(self, out: Path, size_gib: int = 1) -> None:
        self.out = out
        self.size_gib = size_gib
        self.box = out / "stackha-trixie.box"
        self.work = out / ".stackha-trixie.box.build"
        self.disk = self.work / "disk.raw"
        self.root = self.work / "root"
        self.image = self.work / "box.img"
        self.guest: dict[str, object] = {}

    def run(self, runner, tree, debs, log=None):
        return vagrant_box.box_from_tree(
            runner, tree, RELEASE, debs, self.out, KEY, BOOT_CODE, self.size_gib, log=log
        )

    def snapshot(self) -> None:
        """What the box's filesystem holds when it is unmounted (it is gone afterwards)."""
        root = self.root
        keys = root / "home/vagrant/.ssh/authorized_keys"
        self.guest |= {
            "fstab": (root / "etc/fstab").read_text(),
            "hostname": (root / "etc/hostname").read_text(),
            "hosts": (root / "etc/hosts").read_text(),
            "machine-id": (root / "etc/machine-id").read_text(),
            "extlinux.conf": (root / "boot/extlinux/extlinux.conf").read_text(),
            "network": (root / "etc/systemd/network/90-stackha-dhcp.network").read_text(),
            "sudoers": (root / "etc/sudoers.d/vagrant").read_text(),
            "sudoers mode": stat.S_IMODE((root / "etc/sudoers.d/vagrant").stat().st_mode),
            "keys": keys.read_text(),
            "keys mode": stat.S_IMODE(keys.stat().st_mode),
            "keys owner": (keys.stat().st_uid, keys.stat().st_gid),
            "ssh mode": stat.S_IMODE(keys.parent.stat().st_mode),
            "policy-rc.d": (root / "usr/sbin/policy-rc.d").exists(),
            "tmp": sorted(p.name for p in (root / "tmp").iterdir()),
            "etc/ssh": sorted(p.name for p in (root / "etc/ssh").iterdir()),
            "host keys unit": (
                root / "etc/systemd/system/stackha-ssh-host-keys.service"
            ).read_text(),
        }

    def record_tmp(self) -> None:
        self.guest["tmp"] = sorted(p.name for p in (self.root / "tmp").iterdir())

    def record_debs_for_dpkg(self) -> None:
        self.guest["tmp at dpkg"] = {p.name: p.read_bytes() for p in (self.root / "tmp").iterdir()}

    def copy_tree(self, tree: Path) -> None:
        shutil.copytree(tree, self.root, symlinks=True, dirs_exist_ok=True)

    def extlinux_boot_sector(self) -> None:
        # extlinux writes its boot sector through the loop device: into the partition's
        # first sector, hidden sectors 0
        with open(self.disk, "r+b") as disk:
            disk.seek(2048 * 512 + 510)
            disk.write(b"\x55\xaa")

    def convert(self) -> None:
        # the raw disk's first 2 MiB (the MBR, the partition's boot sector) stand for the qcow2
        with open(self.disk, "rb") as disk:
            self.image.write_bytes(disk.read(2 * MIB))


def expect_until_copy(runner, build, tree, debs):
    """losetup, mkfs, blkid, mount, cp -a, the chroot's mounts, dpkg."""
    root = str(build.root)
    partition_bytes = build.size_gib * GIB - MIB
    runner.expect(
        [
            LOSETUP,
            "--find",
            "--show",
            "--offset",
            "1048576",
            "--sizelimit",
            str(partition_bytes),
            str(build.disk),
        ],
        stdout=DEVICE + "\n",
    )
    runner.expect([MKFS_EXT4, "-q", "-O", "^64bit,^metadata_csum", DEVICE])
    runner.expect([BLKID, "-p", "-s", "UUID", "-o", "value", DEVICE], stdout=UUID + "\n")
    runner.expect([MOUNT, DEVICE, root])
    runner.expect([CP, "-a", f"{tree}/.", root], effect=lambda: build.copy_tree(tree))
    runner.expect([MOUNT, "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", f"{root}/proc"])
    runner.expect([MOUNT, "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs", f"{root}/sys"])
    runner.expect([MOUNT, "--bind", "/dev", f"{root}/dev"])


def dpkg_argv(build, debs):
    return [CHROOT, str(build.root), DPKG, "--install", *(f"/tmp/{d.name}" for d in debs)]


def expect_chroot_unmounts(runner, build):
    for directory in ("dev", "sys", "proc"):
        runner.expect([UMOUNT, f"{build.root}/{directory}"])


def expect_whole_build(runner, build, tree, debs, fstrim_returncode=0):
    root = str(build.root)
    expect_until_copy(runner, build, tree, debs)
    runner.expect(dpkg_argv(build, debs), effect=build.record_debs_for_dpkg)
    runner.expect([CHROOT, root, GROUPADD, "--gid", "1000", "vagrant"])
    runner.expect(
        [
            CHROOT,
            root,
            USERADD,
            "--uid",
            "1000",
            "--gid",
            "1000",
            "--create-home",
            "--home-dir",
            "/home/vagrant",
            "--shell",
            "/bin/bash",
            "vagrant",
        ]
    )
    runner.expect(
        [
            CHROOT,
            root,
            SYSTEMCTL,
            "enable",
            "systemd-networkd.service",
            "ssh.service",
            "stackha-ssh-host-keys.service",
        ]
    )
    runner.expect(
        [
            CHROOT,
            root,
            SYSTEMCTL,
            "disable",
            "corosync.service",
            "pacemaker.service",
            "haproxy.service",
            "mariadb.service",
            "rabbitmq-server.service",
            "systemd-networkd-wait-online.service",
        ]
    )
    expect_chroot_unmounts(runner, build)
    runner.expect(
        [EXTLINUX, "--install", f"{root}/boot/extlinux"], effect=build.extlinux_boot_sector
    )
    runner.expect(
        [FSTRIM, root],
        returncode=fstrim_returncode,
        stderr="fstrim: the discard operation is not supported" if fstrim_returncode else "",
    )
    runner.expect([UMOUNT, root], effect=build.snapshot)
    runner.expect([LOSETUP, "--detach", DEVICE])
    runner.expect(
        [QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", "-c", str(build.disk), str(build.image)],
        effect=build.convert,
    )


# -- the disk's bytes --------------------------------------------------------------------------


def test_the_mbr_has_one_bootable_linux_partition_from_1_mib_to_the_end():
    """syslinux's 440 bytes of boot code, the disk id, one entry (bootable, type 0x83, LBA
    2048, every sector after it), three empty entries, the 0x55AA signature."""
    sectors = 4 * GIB // 512
    record = vagrant_box.master_boot_record(sectors, BOOT_CODE)
    assert len(record) == 512
    assert record[:440] == BOOT_CODE[:440]
    assert struct.unpack_from("<IH", record, 440) == (vagrant_box.DISK_ID, 0)
    entry = record[446:462]
    assert entry[0] == 0x80  # bootable
    assert entry[4] == 0x83  # Linux
    assert struct.unpack_from("<II", entry, 8) == (2048, sectors - 2048)
    # CHS of sector 2048 as fdisk writes it (cylinder 0, head 32, sector 33)
    assert entry[1:4] == bytes([0x20, 0x21, 0x00])
    assert record[462:510] == bytes(48)
    assert record[510:] == b"\x55\xaa"


def test_a_partition_end_past_cylinder_1023_has_the_use_lba_chs():
    """Past what CHS can address, the end is FE FF FF: BIOSes then read the LBA fields."""
    record = vagrant_box.master_boot_record(16 * GIB // 512, BOOT_CODE)
    assert record[446 + 5 : 446 + 8] == b"\xfe\xff\xff"


def test_short_boot_code_or_a_disk_with_no_room_is_an_error():
    """A truncated mbr.bin or a disk of 1 MiB or less is refused, never written."""
    with pytest.raises(LabError, match="MBR boot code of 100 bytes: 440 expected"):
        vagrant_box.master_boot_record(8192, bytes(100))
    with pytest.raises(LabError, match="a disk of 2048 sectors has no room for a partition"):
        vagrant_box.master_boot_record(2048, BOOT_CODE)


def test_the_raw_disk_is_sparse_and_starts_with_the_mbr(tmp_path):
    """A disk of GiB costs its written sectors only; its first sector is the MBR."""
    disk = tmp_path / "disk.raw"
    vagrant_box.write_raw_disk(disk, GIB, BOOT_CODE)
    assert disk.stat().st_size == GIB
    assert disk.stat().st_blocks * 512 < MIB, "the image is sparse"
    with open(disk, "rb") as image:
        assert image.read(512) == vagrant_box.master_boot_record(GIB // 512, BOOT_CODE)


def test_the_hidden_sectors_field_of_the_partitions_boot_sector_becomes_2048(tmp_path):
    """A little-endian 2048 at byte 0x1C of the partition's first sector; nothing else moves."""
    disk = tmp_path / "disk.raw"
    sector = bytearray(os.urandom(512))
    sector[0x1C:0x20] = bytes(4)  # what extlinux wrote through the loop device
    sector[510:512] = b"\x55\xaa"
    disk.write_bytes(os.urandom(MIB) + bytes(sector) + os.urandom(1024))
    before = disk.read_bytes()
    vagrant_box.set_hidden_sectors(disk)
    after = disk.read_bytes()
    assert after[MIB + 0x1C : MIB + 0x20] == b"\x00\x08\x00\x00"
    assert after[: MIB + 0x1C] == before[: MIB + 0x1C]
    assert after[MIB + 0x20 :] == before[MIB + 0x20 :]


def test_no_boot_sector_at_the_partition_is_an_error_and_nothing_is_written(tmp_path):
    """No 0x55AA where extlinux's boot sector should be: refused, the image untouched."""
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(MIB + 512))
    with pytest.raises(LabError, match="no boot sector at sector 2048"):
        vagrant_box.set_hidden_sectors(disk)
    assert disk.read_bytes() == bytes(MIB + 512)


# -- the guest's files and the box file ----------------------------------------------------------


def test_extlinux_boots_the_kernel_links_with_the_root_by_uuid_and_a_serial_console():
    """/vmlinuz and /initrd.img (the links), root by filesystem UUID, ttyS0, ethN names."""
    assert vagrant_box.extlinux_conf(UUID) == (
        "# stackha's Vagrant box (stackha.lab.vagrant_box)\n"
        "DEFAULT debian\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL debian\n"
        "    LINUX /vmlinuz\n"
        "    INITRD /initrd.img\n"
        f"    APPEND root=UUID={UUID} rw console=ttyS0 net.ifnames=0\n"
    )


def test_the_metadata_is_a_libvirt_qcow2_of_whole_gib():
    """vagrant-libvirt reads the disk's format and its size in GiB from metadata.json."""
    assert json.loads(vagrant_box.metadata(4)) == {
        "provider": "libvirt",
        "format": "qcow2",
        "virtual_size": 4,
    }


def test_the_insecure_key_is_read_from_the_vagrant_package_whatever_its_version(tmp_path):
    """The key under any vagrant-VERSION directory; none is one line naming the pattern."""
    pattern = str(tmp_path / "gems/vagrant-*/keys/vagrant.pub")
    with pytest.raises(LabError) as raised:
        vagrant_box.insecure_public_key(pattern)
    assert str(raised.value) == (
        f"no Vagrant insecure public key at {pattern}: install the vagrant package"
    )
    key = tmp_path / "gems/vagrant-2.3.4/keys/vagrant.pub"
    key.parent.mkdir(parents=True)
    key.write_text(KEY.strip())
    assert vagrant_box.insecure_public_key(pattern) == KEY


def test_missing_mbr_code_names_the_package_that_has_it(tmp_path):
    """No mbr.bin names syslinux-common; an unreadable one says why; a good one gives 440 bytes."""
    with pytest.raises(LabError, match=r"mbr.bin: no MBR boot code: install .*syslinux-common"):
        vagrant_box.read_boot_code(str(tmp_path / "mbr.bin"))
    with pytest.raises(LabError, match=r"cannot read the MBR boot code: Is a directory"):
        vagrant_box.read_boot_code(str(tmp_path))
    (tmp_path / "mbr.bin").write_bytes(BOOT_CODE)
    assert vagrant_box.read_boot_code(str(tmp_path / "mbr.bin")) == BOOT_CODE[:440]


def test_the_vagrant_user_gets_1000_unless_a_user_or_group_has_it(tmp_path):
    """One id free as both a uid and a gid, from 1000 up."""
    from stackha.lab.accounts import Accounts

    assert vagrant_box.first_free_id(Accounts(make_tree(tmp_path / "a"))) == 1000
    taken = make_tree(tmp_path / "b", "u:x:1000:1000::/:\n", "u:x:1000:\ng:x:1001:\n")
    assert vagrant_box.first_free_id(Accounts(taken)) == 1002


def test_only_the_distribution_units_the_tree_has_are_disabled(tree):
    """systemctl disable fails on a unit it does not know: only those in the tree are named."""
    assert vagrant_box.present_units(tree) == [
        "corosync.service",
        "pacemaker.service",
        "haproxy.service",
        "mariadb.service",
        "rabbitmq-server.service",
    ]


def test_missing_programs_name_their_packages(tmp_path):
    """Each missing program with the Debian package to install for it."""
    present = tmp_path / "losetup"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    programs = {str(present): "mount", str(tmp_path / "extlinux"): "extlinux"}
    assert missing_programs(programs) == [f"extlinux ({tmp_path}/extlinux)"]


# -- the build ---------------------------------------------------------------------------------


def test_a_box_is_built_on_a_loop_device_and_packed_with_its_metadata(runner, tree, debs, tmp_path):
    """Every command in order: the partition's loop device, ext4 extlinux can boot, the tree
    copied, the packages installed and the units set in a chroot whose mounts are undone, the
    boot loader, fstrim, unmount, detach, then the hidden sectors and the qcow2; the box holds
    metadata.json, the Vagrantfile and the image, and nothing else of the build is left."""
    build = Build(tmp_path / "out")
    expect_whole_build(runner, build, tree, debs)
    lines: list[str] = []
    assert build.run(runner, tree, debs, lines.append) == build.box
    guest = build.guest
    assert guest["fstab"].endswith(f"UUID={UUID} / ext4 errors=remount-ro 0 1\n")
    assert guest["hostname"] == "stackha\n"
    assert "127.0.1.1\tstackha\n" in guest["hosts"]
    assert guest["machine-id"] == ""
    assert guest["extlinux.conf"] == vagrant_box.extlinux_conf(UUID)
    assert "[Match]\nName=eth*\n" in guest["network"] and "DHCP=yes\n" in guest["network"]
    assert guest["sudoers"] == "vagrant ALL=(ALL) NOPASSWD:ALL\n"
    assert guest["sudoers mode"] == 0o440
    assert guest["keys"] == KEY
    assert (guest["keys mode"], guest["ssh mode"], guest["keys owner"]) == (
        0o600,
        0o700,
        (1000, 1000),
    )
    assert guest["policy-rc.d"] is False, "the VM starts its services as any Debian system"
    assert guest["etc/ssh"] == ["sshd_config"], "no host key shared by every VM"
    assert "ExecStart=/usr/bin/ssh-keygen -A\n" in guest["host keys unit"]
    assert "Before=ssh.service\n" in guest["host keys unit"]
    assert guest["tmp at dpkg"] == {deb.name: deb.read_bytes() for deb in debs}
    assert guest["tmp"] == [], "the packages' files are not left in the box's /tmp"
    with tarfile.open(build.box) as box:
        assert box.getnames() == ["metadata.json", "Vagrantfile", "box.img"]
        meta = json.load(box.extractfile("metadata.json"))
        vagrantfile = box.extractfile("Vagrantfile").read().decode()
        image = box.extractfile("box.img").read()
    assert meta == {"provider": "libvirt", "format": "qcow2", "virtual_size": 1}
    assert (
        'libvirt.disk_bus = "virtio"' in vagrantfile
        and "driver" not in vagrantfile.split("Vagrant.configure")[1]
    )
    assert len(image) == 2 * MIB
    assert image[:512] == vagrant_box.master_boot_record(GIB // 512, BOOT_CODE)
    assert image[MIB + 0x1C : MIB + 0x20] == struct.pack("<I", 2048)
    assert sorted(p.name for p in build.out.iterdir()) == [
        ".stackha-trixie.box.lock",
        "stackha-trixie.box",
    ]
    assert lines[-1] == f"box: {build.box}"


def test_a_failing_fstrim_only_makes_a_bigger_box(runner, tree, debs, tmp_path):
    """fstrim only shrinks the box: its failure is logged and the build goes on."""
    build = Build(tmp_path / "out")
    expect_whole_build(runner, build, tree, debs, fstrim_returncode=1)
    lines: list[str] = []
    assert build.run(runner, tree, debs, lines.append) == build.box
    assert any("fstrim failed (exit 1): fstrim: the discard" in line for line in lines)


def test_a_failure_in_the_chroot_undoes_every_mount_and_the_loop_device(
    runner, tree, debs, tmp_path
):
    """dpkg fails: /dev, /sys, /proc, then the disk unmounted and the loop device detached;
    the error is dpkg's; no box, no build directory, an earlier box left as it was."""
    build = Build(tmp_path / "out")
    build.out.mkdir()
    build.box.write_bytes(b"the box of an earlier build")
    expect_until_copy(runner, build, tree, debs)
    runner.expect(
        dpkg_argv(build, debs),
        returncode=1,
        stderr="dpkg: dependency problems prevent configuration of stackha:\n",
    )
    expect_chroot_unmounts(runner, build)
    runner.expect([UMOUNT, str(build.root)], effect=build.record_tmp)
    runner.expect([LOSETUP, "--detach", DEVICE])
    with pytest.raises(
        LabError,
        match=r"^dpkg installing stackha_1.2_all.deb, stackha-lab_1.2_all.deb in the box "
        r"failed \(exit 1\): dpkg: dependency problems prevent configuration of stackha:$",
    ):
        build.run(runner, tree, debs)
    assert build.guest["tmp"] == [], "the packages' copies are removed even on failure"
    assert build.box.read_bytes() == b"the box of an earlier build"
    assert not build.work.exists()


def test_a_chroot_mount_that_fails_undoes_the_ones_before_it(runner, tree, debs, tmp_path):
    """/sys cannot be mounted: /proc (mounted before it) is unmounted, then the disk, then the
    loop device detached; /dev was never mounted, so it is not unmounted."""
    build = Build(tmp_path / "out")
    root = str(build.root)
    expect_until_copy(runner, build, tree, debs)
    mount_dev = runner.expected.pop()  # the /dev mount never comes
    assert mount_dev.argv[-1] == f"{root}/dev"
    runner.expected[-1].returncode = 32
    runner.expected[-1].stderr = "mount: /x/sys: permission denied.\n"
    runner.expect([UMOUNT, f"{root}/proc"])
    runner.expect([UMOUNT, root])
    runner.expect([LOSETUP, "--detach", DEVICE])
    with pytest.raises(LabError, match=r"^mounting .*/root/sys failed \(exit 32\): mount: "):
        build.run(runner, tree, debs)
    assert not build.box.exists()
    assert not build.work.exists()


def test_an_undo_that_fails_after_a_failure_is_logged_and_the_first_error_raised(
    runner, tree, debs, tmp_path
):
    """The copy runs out of space, the disk's unmount then fails too: the loop device is
    still detached, the error raised is the copy's, the unmount's is in the log."""
    build = Build(tmp_path / "out")
    partition_bytes = GIB - MIB
    runner.expect(
        [LOSETUP, "--find", "--show", "--offset", "1048576", "--sizelimit"]
        + [str(partition_bytes), str(build.disk)],
        stdout=DEVICE + "\n",
    )
    runner.expect([MKFS_EXT4, "-q", "-O", "^64bit,^metadata_csum", DEVICE])
    runner.expect([BLKID, "-p", "-s", "UUID", "-o", "value", DEVICE], stdout=UUID + "\n")
    runner.expect([MOUNT, DEVICE, str(build.root)])
    runner.expect(
        [CP, "-a", f"{tree}/.", str(build.root)],
        returncode=1,
        stderr="cp: error writing 'x/usr/lib/libLLVM.so.19.1': No space left on device\n",
    )
    runner.expect([UMOUNT, str(build.root)], returncode=32, stderr="umount: target is busy.\n")
    runner.expect([LOSETUP, "--detach", DEVICE])
    lines: list[str] = []
    with pytest.raises(
        LabError, match=r"^copying .* failed \(exit 1\): .*No space left on device$"
    ):
        build.run(runner, tree, debs, lines.append)
    assert f"box: unmounting {build.root} failed (exit 32): umount: target is busy." in lines
    assert not build.box.exists()
    assert not build.work.exists()


def test_an_undo_that_fails_after_success_is_the_error_and_the_rest_is_still_undone(
    runner, tree, debs, tmp_path
):
    """The disk's unmount fails at the end of a good build: that is the error, the loop
    device is detached all the same, and no box is made."""
    build = Build(tmp_path / "out")
    expect_whole_build(runner, build, tree, debs)
    # the last three expectations: the unmount (failing now), the detach, qemu-img (never run)
    runner.expected[-3].returncode = 32
    runner.expected[-3].stderr = "umount: target is busy.\n"
    del runner.expected[-1]
    with pytest.raises(LabError, match=r"^unmounting .*/root failed \(exit 32\): umount: target"):
        build.run(runner, tree, debs)
    assert not build.box.exists()
    assert not build.work.exists()


def test_a_loop_device_that_cannot_be_attached_leaves_nothing(runner, tree, debs, tmp_path):
    """No loop device: losetup's reason, nothing to detach, nothing of the build left."""
    build = Build(tmp_path / "out")
    runner.expect(
        [LOSETUP, "--find", "--show", "--offset", "1048576", "--sizelimit"]
        + [str(GIB - MIB), str(build.disk)],
        returncode=1,
        stderr="losetup: cannot find an unused loop device\n",
    )
    with pytest.raises(LabError, match=r"attaching the partition of .* cannot find an unused"):
        build.run(runner, tree, debs)
    assert sorted(p.name for p in build.out.iterdir()) == [".stackha-trixie.box.lock"]


def test_a_conversion_that_times_out_leaves_no_box(runner, tree, debs, tmp_path):
    """qemu-img past its timeout (the runner kills it): an error saying so, no box."""
    build = Build(tmp_path / "out")
    expect_whole_build(runner, build, tree, debs)
    runner.expected[-1].timed_out = True
    with pytest.raises(LabError, match=r"^qemu-img converting the box's disk: .* did not finish"):
        build.run(runner, tree, debs)
    assert not build.box.exists()
    assert not build.work.exists()


def test_a_killed_builds_leftover_is_removed_first(runner, tree, debs, tmp_path):
    """A build directory left by a killed build is removed, not built into."""
    build = Build(tmp_path / "out")
    build.work.mkdir(parents=True)
    (build.work / "disk.raw").write_bytes(b"half a disk")
    expect_whole_build(runner, build, tree, debs)
    assert build.run(runner, tree, debs) == build.box
    assert not build.work.exists()


def test_a_tree_without_a_kernel_is_refused_before_any_command(tmp_path, debs):
    """A namespace lab's tree (no [vm] section: no /vmlinuz) makes no disk."""
    tree = make_tree(tmp_path / "tree")
    (tree / "vmlinuz").unlink()
    build = Build(tmp_path / "out")
    with pytest.raises(LabError, match=r"tree has no /vmlinuz or /initrd.img"):
        build.run(FakeRunner(), tree, debs)
    assert not build.out.exists()


def test_build_box_checks_what_it_needs_before_building_a_tree(tmp_path, debs, fake_runner):
    """An unknown release, a missing package file, no insecure key, no MBR code: each is one
    line naming it, and no tree is built (the fake runner expects no command)."""
    out = tmp_path / "out"
    key = tmp_path / "gems/vagrant-2.3.4/keys/vagrant.pub"
    key.parent.mkdir(parents=True)
    key.write_text(KEY)
    pattern = str(tmp_path / "gems/vagrant-*/keys/vagrant.pub")
    with pytest.raises(LabError, match="unknown release 'sid'"):
        vagrant_box.build_box(fake_runner, "sid", debs, out)
    with pytest.raises(LabError, match=r"nothing.deb: no such package file"):
        vagrant_box.build_box(fake_runner, RELEASE, [tmp_path / "nothing.deb"], out)
    with pytest.raises(LabError, match="no Vagrant insecure public key"):
        vagrant_box.build_box(fake_runner, RELEASE, debs, out, key_pattern=str(tmp_path / "x"))
    with pytest.raises(LabError, match="no MBR boot code"):
        vagrant_box.build_box(
            fake_runner,
            RELEASE,
            debs,
            out,
            key_pattern=pattern,
            boot_code_path=str(tmp_path / "mbr.bin"),
        )
    assert not out.exists()


def test_a_box_is_rebuilt_only_when_its_tree_or_a_package_changes(tmp_path, debs, monkeypatch):
    """The recipe beside the box (tree name, packages' sha256, size): the same recipe returns
    the box as it is, with no command run; a changed package or tree builds it again."""
    out = tmp_path / "out"
    out.mkdir()
    box = vagrant_box.box_path(out, RELEASE)
    box.write_bytes(b"an earlier box")
    tree = make_tree(tmp_path / f"{RELEASE}-0123456789abcdef")
    key = tmp_path / "gems/vagrant-2.3.4/keys/vagrant.pub"
    key.parent.mkdir(parents=True)
    key.write_text(KEY)
    boot_code = tmp_path / "mbr.bin"
    boot_code.write_bytes(bytes(440))
    monkeypatch.setattr(vagrant_box, "missing_programs", lambda required: [])
    trees = [tree]
    monkeypatch.setattr(vagrant_box, "vm_tree", lambda *args: trees[0])
    rebuilt = []
    monkeypatch.setattr(vagrant_box, "box_from_tree", lambda *args, **kw: rebuilt.append(1) or box)

    def build():
        return vagrant_box.build_box(
            FakeRunner(),
            RELEASE,
            debs,
            out,
            key_pattern=str(key),
            boot_code_path=str(boot_code),
        )

    assert vagrant_box.recorded_recipe(box) is None
    assert build() == box and len(rebuilt) == 1, "no recipe: built"
    assert vagrant_box.recorded_recipe(box) == vagrant_box.box_recipe(tree, debs, 4)
    assert build() == box and len(rebuilt) == 1, "same recipe: cached"
    debs[0].write_bytes(b"another build of stackha")
    assert build() == box and len(rebuilt) == 2, "a package changed: built"
    trees[0] = make_tree(tmp_path / f"{RELEASE}-fedcba9876543210")
    assert build() == box and len(rebuilt) == 3, "another package list: built"
    vagrant_box.recipe_path(box).write_text("{not json")
    assert build() == box and len(rebuilt) == 4, "an unreadable recipe: built"


def test_each_profile_has_a_box_of_its_own_built_from_its_own_tree(tmp_path, debs, monkeypatch):
    """stackha-trixie (stack) and stackha-trixie-cluster: two boxes, two recipes, two trees."""
    out = tmp_path / "out"
    assert vagrant_box.box_path(out, "trixie").name == "stackha-trixie.box"
    assert vagrant_box.box_path(out, "trixie", "cluster").name == "stackha-trixie-cluster.box"
    key = tmp_path / "gems/vagrant-2.3.4/keys/vagrant.pub"
    key.parent.mkdir(parents=True)
    key.write_text(KEY)
    boot_code = tmp_path / "mbr.bin"
    boot_code.write_bytes(bytes(440))
    monkeypatch.setattr(vagrant_box, "missing_programs", lambda required: [])
    asked = []

    def vm_tree(runner, release, cache_dir, log, profile):
        asked.append(profile)
        return make_tree(tmp_path / f"{release}-{profile}")

    monkeypatch.setattr(vagrant_box, "vm_tree", vm_tree)

    def box_from_tree(runner, tree, release, debs, out_dir, *args, profile, **kw):
        path = vagrant_box.box_path(out_dir, release, profile)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tree.name)
        return path

    monkeypatch.setattr(vagrant_box, "box_from_tree", box_from_tree)
    for profile in ("cluster", "stack"):
        vagrant_box.build_box(
            FakeRunner(),
            "trixie",
            debs,
            out,
            key_pattern=str(key),
            boot_code_path=str(boot_code),
            profile=profile,
        )
    assert asked == ["cluster", "stack"]
    assert (out / "stackha-trixie-cluster.box").read_text() == "trixie-cluster"
    assert (out / "stackha-trixie.box").read_text() == "trixie-stack"
    assert vagrant_box.recorded_recipe(out / "stackha-trixie-cluster.box")["tree"] == (
        "trixie-cluster"
    )
