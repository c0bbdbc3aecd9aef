"""A libvirt Vagrant box of a release's lab node tree, made offline from Debian's packages only.

The box is the namespace lab's node tree of the release (:func:`stackha.lab.release.vm_tree`:
the ``stack`` profile's packages, or the ``cluster`` profile's in ``stackha-<release>-cluster``,
and the ``[vm]`` section's kernel and init, from the same tree cache) with the stackha packages
installed by dpkg, on a disk of its own:

- a raw image with an MBR written here (one bootable Linux partition from sector 2048 to the
  end) and syslinux's MBR boot code;
- the partition mounted through a loop device at an offset: the kernels of this project's
  machines have no partition-table or device-mapper support (``losetup -P``, kpartx), so the
  partition is never a device of its own;
- ext4 without ``64bit`` and ``metadata_csum``, which extlinux cannot boot from;
- what a Vagrant box needs: a ``vagrant`` user with Vagrant's insecure public key and sudo,
  DHCP on every ``ethN`` (systemd-networkd), ssh enabled; the distribution's units of the
  services Pacemaker starts disabled, as on every cluster node;
- extlinux installed from the host, the boot sector's hidden-sectors field set afterwards (see
  :func:`set_hidden_sectors`), the image converted to a compressed qcow2 and packed with
  ``metadata.json`` and a ``Vagrantfile`` into ``stackha-<release>.box``.

The box appears under its name only once complete; a failed build leaves no box, no mount and
no loop device (each step that made one is undone however the build ends).

    vagrant box add --name stackha-trixie OUT_DIR/stackha-trixie.box
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

from stackha.lab.accounts import Accounts
from stackha.lab.namespaces import LabError, missing_programs
from stackha.lab.release import DPKG, LAYER_TIMEOUT_S, check_release, vm_tree
from stackha.lab.rootfs import (
    CHROOT,
    DEFAULT_CACHE_DIR,
    MOUNT,
    POLICY_RC_D,
    UMOUNT,
    locked,
    remove_tree,
)
from stackha.runner import CommandError
from stackha.services import api_catalog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from typing import Callable, Optional

    from stackha.runner import Result, Runner

# The host's programs (Debian 12 paths).
LOSETUP = "/sbin/losetup"
MKFS_EXT4 = "/sbin/mkfs.ext4"
BLKID = "/sbin/blkid"
FSTRIM = "/sbin/fstrim"
CP = "/bin/cp"
EXTLINUX = "/usr/bin/extlinux"
QEMU_IMG = "/usr/bin/qemu-img"
# syslinux's MBR boot code: it boots the partition marked bootable.
MBR_CODE = "/usr/lib/syslinux/mbr/mbr.bin"
# Vagrant's insecure public key as Debian's vagrant package ships it (the version in the path).
VAGRANT_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
# What building a box needs on the host, and the Debian package of each.
HOST_PROGRAMS = {
    LOSETUP: "mount",
    MKFS_EXT4: "e2fsprogs",
    BLKID: "util-linux",
    FSTRIM: "util-linux",
    EXTLINUX: "extlinux",
    QEMU_IMG: "qemu-utils",
}
# The guest's own programs, run in a chroot of the box's filesystem.
GROUPADD = "/usr/sbin/groupadd"
USERADD = "/usr/sbin/useradd"
SYSTEMCTL = "/usr/bin/systemctl"

SECTOR = 512
GIB = 1024**3
# 1 MiB, where every partitioning tool has started the first partition since 2008.
PARTITION_START = 2048
BOOT_CODE_SIZE = 440  # the MBR's bytes before the disk identifier
LINUX_PARTITION = 0x83
BOOTABLE = 0x80
# Any value but 0: the kernel names the partition by it (PARTUUID); nothing here boots by it.
DISK_ID = 0x53544841
# The geometry BIOSes assume for CHS addresses (255 heads, 63 sectors a track); past cylinder
# 1023 an address is the conventional FE FF FF: "use the LBA fields".
HEADS = 255
SECTORS_PER_TRACK = 63
CHS_BEYOND = b"\xfe\xff\xff"
# In the boot sector extlinux writes at the start of the partition (a FAT-style BIOS parameter
# block): the partition's first sector on the disk, little-endian uint32.
HIDDEN_SECTORS_OFFSET = 0x1C
# The stack profile's trixie tree is 1.5 GB without a kernel (Dec 2026): 4 GiB leaves room
# for the kernel and a lab's databases. The qcow2 stores only what is written.
DEFAULT_SIZE_GIB = 4
HOSTNAME = "stackha"
VAGRANT_USER = "vagrant"
VAGRANT_HOME = "/home/vagrant"
# The distribution's units of the services Pacemaker starts itself (as resources, or corosync
# and pacemaker by the Vagrant lab's provisioning): enabled, they would start at boot
# outside the cluster's control.
DISTRO_UNITS = (
    "corosync",
    "pacemaker",
    "pcsd",
    "haproxy",
    "mariadb",
    "rabbitmq-server",
    # trixie's pcs splits its daemon in two: pcsd and the Ruby half it starts
    "pcsd-ruby",
    *(unit for service in api_catalog.SERVICES for unit in service.lab.units),
)
# Units that only hold the boot up: networkd's wait-online waits 2 minutes for every link,
# and the cluster link has no DHCP server (Vagrant configures it after the boot).
BOOT_WAITS = ("systemd-networkd-wait-online",)
UNIT_DIRS = ("usr/lib/systemd/system", "lib/systemd/system", "etc/systemd/system")
# Each VM makes its own SSH host keys at its first boot: the box ships none (the tree's, made
# once by openssh-server's postinst, would be every VM's, and ssh's known_hosts could not
# tell them apart). Before ssh, which refuses to start without them.
HOST_KEYS_UNIT = "stackha-ssh-host-keys.service"
HOST_KEYS_UNIT_TEXT = """\
# stackha's Vagrant box (stackha.lab.vagrant_box): SSH host keys of this VM's own
[Unit]
Description=SSH host keys of this machine's own
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=ssh.service
"""
ENABLED_UNITS = ("systemd-networkd.service", "ssh.service", HOST_KEYS_UNIT)
# Sorted after the 50-vagrant-ethN.network files Vagrant writes for its private networks (the
# first file that matches an interface configures it): those keep their static addresses.
NETWORK_FILE = "etc/systemd/network/90-stackha-dhcp.network"
DPKG_ENV = {"DEBIAN_FRONTEND": "noninteractive"}

DEVICE_TIMEOUT_S = 30.0  # losetup, blkid, mount, the chroot's umounts
# The disk's umount writes back what the copy left in the page cache: a 2 GB tree's worth.
UNMOUNT_TIMEOUT_S = 300.0
MKFS_TIMEOUT_S = 120.0
# A 2 GB tree or image on a 2-core machine: minutes at most; past these something is stuck.
COPY_TIMEOUT_S = 1800.0
CONVERT_TIMEOUT_S = 1800.0
CHROOT_TIMEOUT_S = 60.0  # useradd, systemctl
EXTLINUX_TIMEOUT_S = 60.0
FSTRIM_TIMEOUT_S = 300.0


# -- the disk's bytes --------------------------------------------------------------------------


def _chs(lba: int) -> bytes:
    cylinder, rest = divmod(lba, HEADS * SECTORS_PER_TRACK)
    if cylinder > 1023:
        return CHS_BEYOND
    head, sector = divmod(rest, SECTORS_PER_TRACK)
    return bytes([head, (sector + 1) | ((cylinder >> 2) & 0xC0), cylinder & 0xFF])


def master_boot_record(disk_sectors: int, boot_code: bytes, disk_id: int = DISK_ID) -> bytes:
    """The first sector of a disk of ``disk_sectors`` sectors: ``boot_code`` (its first 440
    bytes), one bootable Linux partition from sector 2048 to the end, the 0x55AA signature."""
    if len(boot_code) < BOOT_CODE_SIZE:
        raise LabError(f"MBR boot code of {len(boot_code)} bytes: {BOOT_CODE_SIZE} expected")
    if disk_sectors <= PARTITION_START:
        raise LabError(f"a disk of {disk_sectors} sectors has no room for a partition")
    last = disk_sectors - 1
    entry = struct.pack(
        "<B3sB3sII",
        BOOTABLE,
        _chs(PARTITION_START),
        LINUX_PARTITION,
        _chs(last),
        PARTITION_START,
        disk_sectors - PARTITION_START,
    )
    record = boot_code[:BOOT_CODE_SIZE] + struct.pack("<IH", disk_id, 0) + entry + bytes(48)
    return record + b"\x55\xaa"


def write_raw_disk(path: Path, size_bytes: int, boot_code: bytes) -> None:
    """A sparse raw image of ``size_bytes`` with the MBR of :func:`master_boot_record`."""
    if size_bytes % SECTOR:
        raise LabError(f"a disk of {size_bytes} bytes: not a whole number of sectors")
    record = master_boot_record(size_bytes // SECTOR, boot_code)
    with open(path, "xb") as disk:
        disk.truncate(size_bytes)
        disk.write(record)


def set_hidden_sectors(image: Path, partition_start: int = PARTITION_START) -> None:
    """Write ``partition_start`` into the hidden-sectors field of the boot sector extlinux
    installed at the partition's start.

    extlinux installed through a loop device at an offset writes 0 there (the device starts
    where the partition does, as far as it can tell); the boot sector adds the field to the
    sectors of ldlinux.sys recorded at install, so with 0 it would load them from the disk's
    start instead of the partition's.
    Raises LabError when the partition's first sector is no boot sector.
    """
    offset = partition_start * SECTOR
    with open(image, "r+b") as disk:
        disk.seek(offset)
        sector = disk.read(SECTOR)
        if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
            raise LabError(f"{image}: no boot sector at sector {partition_start} (extlinux's)")
        disk.seek(offset + HIDDEN_SECTORS_OFFSET)
        disk.write(struct.pack("<I", partition_start))


# -- the guest's files -------------------------------------------------------------------------


def extlinux_conf(uuid: str) -> str:
    """The boot loader's configuration: the kernel and initramfs through the links the kernel
    package keeps current, so a kernel upgraded in the VM boots with no change here."""
    return (
        "# stackha's Vagrant box (stackha.lab.vagrant_box)\n"
        "DEFAULT debian\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL debian\n"
        "    LINUX /vmlinuz\n"
        "    INITRD /initrd.img\n"
        # ttyS0: virsh console and the libvirt log see the boot; ethN: what the .network
        # file matches, whatever the PCI slots of the VM's interfaces
        f"    APPEND root=UUID={uuid} rw console=ttyS0 net.ifnames=0\n"
    )


def fstab(uuid: str) -> str:
    return (
        f"# stackha's Vagrant box: its one filesystem\nUUID={uuid} / ext4 errors=remount-ro 0 1\n"
    )


def hosts(hostname: str) -> str:
    # the host name resolves, or sudo complains on every command Vagrant runs
    return (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{hostname}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\n"
        "ff02::2\t\tip6-allrouters\n"
    )


# vagrant-libvirt finds a VM by the address its management network leases to eth0.
NETWORK = """\
# stackha's Vagrant box: every ethN by DHCP (stackha.lab.vagrant_box)
[Match]
Name=eth*

[Network]
DHCP=yes
"""
SUDOERS = f"{VAGRANT_USER} ALL=(ALL) NOPASSWD:ALL\n"
# The driver is the box user's to set in the Vagrantfile that uses the box: kvm, or qemu
# where KVM does not work (the paravirtual KVM of this project's machines hangs a Debian kernel).
VAGRANTFILE = """\
# stackha's Vagrant box (stackha.lab.vagrant_box): its disk is box.img, on virtio.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
  end
end
"""


def metadata(size_gib: int) -> str:
    """``metadata.json`` of a libvirt box whose disk is ``size_gib`` GiB."""
    return json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": size_gib}) + "\n"


def insecure_public_key(pattern: str = VAGRANT_KEY_GLOB) -> str:
    """Vagrant's insecure public key, what a fresh box lets in (Vagrant replaces it with a key
    of the VM's own on first ``vagrant up``). Raises LabError naming ``pattern`` when absent."""
    for path in sorted(glob.glob(pattern), reverse=True):
        text = Path(path).read_text(encoding="utf-8").strip()
        if text:
            return text + "\n"
    raise LabError(f"no Vagrant insecure public key at {pattern}: install the vagrant package")


def read_boot_code(path: str = MBR_CODE) -> bytes:
    """syslinux's MBR boot code (``mbr.bin``: 440 bytes)."""
    try:
        return Path(path).read_bytes()[:BOOT_CODE_SIZE]
    except FileNotFoundError:
        raise LabError(f"{path}: no MBR boot code: install the syslinux-common package") from None
    except OSError as err:
        raise LabError(f"{path}: cannot read the MBR boot code: {err.strerror}") from None


def first_free_id(accounts: Accounts, start: int = 1000) -> int:
    """The first id from ``start`` that is neither a user's nor a group's: uid and gid of the
    vagrant user (1000, as on Vagrant's own boxes, unless a package took it)."""
    taken = {ids[0] for ids in accounts.users.values()} | {
        ids[0] for ids in accounts.groups.values()
    }
    candidate = start
    while candidate in taken:
        candidate += 1
    return candidate


def present_units(root: Path, names: Sequence[str] = DISTRO_UNITS) -> list[str]:
    """The ``NAME.service`` units of ``names`` whose unit file the system at ``root`` has."""
    return [
        f"{name}.service"
        for name in names
        if any((root / directory / f"{name}.service").exists() for directory in UNIT_DIRS)
    ]


def box_name(release: str, profile: str = "stack") -> str:
    """The box's name in Vagrant: ``stackha-<release>``, and ``-cluster`` for a box with the
    cluster profile's packages only (the Vagrant tier of make check: smaller, built faster)."""
    return f"stackha-{release}" if profile == "stack" else f"stackha-{release}-{profile}"


def box_path(out_dir: Path, release: str, profile: str = "stack") -> Path:
    return out_dir / f"{box_name(release, profile)}.box"


def pack_box(path: Path, image: Path, size_gib: int) -> None:
    """The box file: ``metadata.json``, ``Vagrantfile`` and ``image`` as ``box.img``, a tar."""

    def as_root(member: tarfile.TarInfo) -> tarfile.TarInfo:
        member.uid = member.gid = 0
        member.uname = member.gname = "root"
        return member

    with tarfile.open(path, "w") as tar:
        for name, text in (("metadata.json", metadata(size_gib)), ("Vagrantfile", VAGRANTFILE)):
            data = text.encode()
            member = as_root(tarfile.TarInfo(name))
            member.size, member.mode = len(data), 0o644
            tar.addfile(member, io.BytesIO(data))
        tar.add(image, arcname="box.img", filter=as_root)


# -- the build -----------------------------------------------------------------------------------


def _run(
    runner: Runner,
    argv: Sequence[str],
    doing: str,
    timeout: float,
    env: Optional[Mapping[str, str]] = None,
) -> Result:
    """``argv`` run; LabError naming ``doing`` when it cannot run, times out or fails."""
    try:
        result = runner.run(argv, timeout=timeout, env=env)
    except CommandError as err:
        raise LabError(f"{doing}: {err}") from err
    if not result.ok:
        raise LabError(f"{doing} failed (exit {result.returncode}): {result.output_line()}")
    return result


@contextmanager
def _undone_after(
    runner: Runner,
    argv: Sequence[str],
    doing: str,
    log: Callable[[str], None],
    timeout: float = DEVICE_TIMEOUT_S,
) -> Iterator[None]:
    """Run ``argv`` when the block ends, however it ends. When the block failed, a failure of
    ``argv`` is logged and the block's error goes on: it says what went wrong first."""
    try:
        yield
    except BaseException:
        try:
            _run(runner, argv, doing, timeout)
        except LabError as err:
            log(f"box: {err}")
        raise
    _run(runner, argv, doing, timeout)


@contextmanager
def _loop_device(runner: Runner, disk: Path, log: Callable[[str], None]) -> Iterator[str]:
    """The partition of ``disk`` as a loop device, detached when the block ends."""
    partition_bytes = disk.stat().st_size - PARTITION_START * SECTOR
    attached = _run(
        runner,
        [
            LOSETUP,
            "--find",
            "--show",
            "--offset",
            str(PARTITION_START * SECTOR),
            "--sizelimit",
            str(partition_bytes),
            str(disk),
        ],
        f"attaching the partition of {disk} to a loop device",
        DEVICE_TIMEOUT_S,
    )
    device = attached.stdout.strip()
    if not device.startswith("/dev/"):
        raise LabError(f"losetup named no loop device for {disk}: {attached.output_line()!r}")
    with _undone_after(runner, [LOSETUP, "--detach", device], f"detaching {device}", log):
        yield device


@contextmanager
def _mounted(
    runner: Runner,
    argv: Sequence[str],
    target: Path,
    log: Callable[[str], None],
    unmount_timeout: float = DEVICE_TIMEOUT_S,
) -> Iterator[None]:
    """The mount ``argv`` (whose mount point is ``target``), unmounted when the block ends."""
    _run(runner, argv, f"mounting {target}", DEVICE_TIMEOUT_S)
    unmount = [UMOUNT, str(target)]
    with _undone_after(runner, unmount, f"unmounting {target}", log, unmount_timeout):
        yield


@contextmanager
def _chroot_ready(runner: Runner, root: Path, log: Callable[[str], None]) -> Iterator[None]:
    """``root``'s /proc, /sys and /dev for the packages' scripts run in a chroot of it."""
    with ExitStack() as stack:
        for argv, target in (
            ([MOUNT, "-t", "proc", "-o", "nosuid,nodev,noexec", "proc"], root / "proc"),
            # read-only: nothing a package's script does may change the host's devices
            ([MOUNT, "-t", "sysfs", "-o", "ro,nosuid,nodev,noexec", "sysfs"], root / "sys"),
            # not --rbind: one umount undoes it; dpkg needs /dev/null, not /dev/pts
            ([MOUNT, "--bind", "/dev"], root / "dev"),
        ):
            stack.enter_context(_mounted(runner, [*argv, str(target)], target, log))
        yield


def _install_debs(runner: Runner, root: Path, debs: Sequence[Path]) -> None:
    copies = [root / "tmp" / deb.name for deb in debs]
    try:
        for deb, copy in zip(debs, copies):
            shutil.copyfile(deb, copy)
        # dpkg, not apt: the tree has their dependencies (the [cluster] section), the build
        # fetches nothing. The tree's policy-rc.d keeps their services from starting here.
        argv = [CHROOT, str(root), DPKG, "--install", *(f"/tmp/{deb.name}" for deb in debs)]
        names = ", ".join(deb.name for deb in debs)
        _run(runner, argv, f"dpkg installing {names} in the box", LAYER_TIMEOUT_S, DPKG_ENV)
    finally:
        for copy in copies:
            copy.unlink(missing_ok=True)


def _add_vagrant_user(runner: Runner, root: Path, public_key: str) -> None:
    user_id = str(first_free_id(Accounts(root)))
    _run(
        runner,
        [CHROOT, str(root), GROUPADD, "--gid", user_id, VAGRANT_USER],
        "adding the vagrant group",
        CHROOT_TIMEOUT_S,
    )
    _run(
        runner,
        [
            CHROOT,
            str(root),
            USERADD,
            "--uid",
            user_id,
            "--gid",
            user_id,
            "--create-home",
            "--home-dir",
            VAGRANT_HOME,
            "--shell",
            "/bin/bash",
            VAGRANT_USER,
        ],
        "adding the vagrant user",
        CHROOT_TIMEOUT_S,
    )
    ssh_dir = root / VAGRANT_HOME.lstrip("/") / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key)
    keys.chmod(0o600)
    for path in (ssh_dir, keys):
        os.chown(path, int(user_id), int(user_id))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure(
    runner: Runner,
    root: Path,
    uuid: str,
    debs: Sequence[Path],
    public_key: str,
    hostname: str,
    log: Callable[[str], None],
) -> None:
    """Make the tree copied to ``root`` a machine Vagrant can boot and log in to."""
    with _chroot_ready(runner, root, log):
        _install_debs(runner, root, debs)
        _add_vagrant_user(runner, root, public_key)
        for key in sorted((root / "etc/ssh").glob("ssh_host_*")):
            key.unlink()
        _write(root / "etc/systemd/system" / HOST_KEYS_UNIT, HOST_KEYS_UNIT_TEXT)
        # The guest's own systemctl (in a chroot it changes links only, starts nothing): the
        # units are the guest's release's, which the host's systemd may not read alike.
        _run(
            runner,
            [CHROOT, str(root), SYSTEMCTL, "enable", *ENABLED_UNITS],
            "enabling networkd, ssh and its host keys in the box",
            CHROOT_TIMEOUT_S,
        )
        disabled = present_units(root) + present_units(root, BOOT_WAITS)
        if disabled:
            _run(
                runner,
                [CHROOT, str(root), SYSTEMCTL, "disable", *disabled],
                "disabling the units Pacemaker starts",
                CHROOT_TIMEOUT_S,
            )
    # The tree cache's policy-rc.d kept services from starting in the chroot, on the host; a
    # machine of its own starts what its packages ask for, as any Debian system does.
    (root / POLICY_RC_D).unlink(missing_ok=True)
    _write(root / "etc/fstab", fstab(uuid))
    _write(root / "etc/hostname", hostname + "\n")
    _write(root / "etc/hosts", hosts(hostname))
    # Empty: every VM made from the box gets a machine id of its own at its first boot (the
    # DHCP client id derives from it: one id for all would give every VM one address).
    _write(root / "etc/machine-id", "", 0o444)
    _write(root / "boot/extlinux/extlinux.conf", extlinux_conf(uuid))
    _write(root / NETWORK_FILE, NETWORK)
    _write(root / "etc/sudoers.d" / VAGRANT_USER, SUDOERS, 0o440)


def _fill_partition(
    runner: Runner,
    disk: Path,
    mount_point: Path,
    tree: Path,
    debs: Sequence[Path],
    public_key: str,
    hostname: str,
    log: Callable[[str], None],
) -> None:
    with _loop_device(runner, disk, log) as device:
        _run(
            runner,
            [MKFS_EXT4, "-q", "-O", "^64bit,^metadata_csum", device],
            f"mkfs.ext4 on {device}",
            MKFS_TIMEOUT_S,
        )
        # -p: probe the device itself; blkid's cache may remember a loop device's last owner
        probed = _run(
            runner,
            [BLKID, "-p", "-s", "UUID", "-o", "value", device],
            f"reading the filesystem UUID of {device}",
            DEVICE_TIMEOUT_S,
        )
        uuid = probed.stdout.strip()
        if not uuid:
            raise LabError(f"blkid found no filesystem UUID on {device}")
        mount_point.mkdir(mode=0o755)
        mount = [MOUNT, device, str(mount_point)]
        with _mounted(runner, mount, mount_point, log, UNMOUNT_TIMEOUT_S):
            log(f"box: copying {tree} to the disk ...")
            _run(
                runner,
                [CP, "-a", f"{tree}/.", str(mount_point)],
                f"copying {tree} to the box's disk",
                COPY_TIMEOUT_S,
            )
            _configure(runner, mount_point, uuid, debs, public_key, hostname, log)
            _run(
                runner,
                [EXTLINUX, "--install", str(mount_point / "boot/extlinux")],
                "extlinux --install",
                EXTLINUX_TIMEOUT_S,
            )
            # Unused blocks punched out of the raw image: the qcow2 is made of what is left.
            # Only a bigger box without it, so a filesystem that cannot is no failure.
            try:
                _run(runner, [FSTRIM, str(mount_point)], "fstrim", FSTRIM_TIMEOUT_S)
            except LabError as err:
                log(f"box: {err} (the box is bigger, nothing else)")


def box_from_tree(
    runner: Runner,
    tree: Path,
    release: str,
    debs: Sequence[Path],
    out_dir: Path,
    public_key: str,
    boot_code: bytes,
    size_gib: int = DEFAULT_SIZE_GIB,
    hostname: str = HOSTNAME,
    log: Optional[Callable[[str], None]] = None,
    profile: str = "stack",
) -> Path:
    """The box of ``tree`` (a release's VM tree) with ``debs`` installed, as
    ``out_dir/stackha-<release>.box`` (:func:`box_path`; replacing one there); its path.

    Built in ``out_dir/.stackha-<release>.box.build`` (a build's leftover there is removed
    first) and renamed into place once complete. Raises LabError naming the step that failed;
    the disk's loop device and mounts are undone, the build directory removed.
    """
    say = log or (lambda line: None)
    check_release(release)
    if not os.path.lexists(tree / "vmlinuz") or not os.path.lexists(tree / "initrd.img"):
        raise LabError(f"{tree} has no /vmlinuz or /initrd.img: not a tree with a kernel")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = box_path(out_dir, release, profile)
    work = out_dir / f".{target.name}.build"
    with locked(out_dir / f".{target.name}.lock"):
        # Under the lock no other build of this box runs: what is there is a killed build's
        # (remove_tree refuses while anything is still mounted in it).
        remove_tree(str(work))
        work.mkdir(mode=0o700)
        try:
            disk = work / "disk.raw"
            write_raw_disk(disk, size_gib * GIB, boot_code)
            say(f"box: a {size_gib} GiB disk for the {release} tree {tree}")
            _fill_partition(runner, disk, work / "root", tree, debs, public_key, hostname, say)
            set_hidden_sectors(disk)
            say("box: converting the disk to a compressed qcow2 ...")
            image = work / "box.img"
            _run(
                runner,
                [QEMU_IMG, "convert", "-f", "raw", "-O", "qcow2", "-c", str(disk), str(image)],
                "qemu-img converting the box's disk",
                CONVERT_TIMEOUT_S,
            )
            packed = work / target.name
            pack_box(packed, image, size_gib)
            os.replace(packed, target)
        except BaseException:
            try:
                remove_tree(str(work))
            except LabError as err:
                say(f"box: {err}")
            raise
        remove_tree(str(work))
    say(f"box: {target}")
    return target


def build_box(
    runner: Runner,
    release: str,
    debs: Sequence[Path],
    out_dir: Path,
    size_gib: int = DEFAULT_SIZE_GIB,
    cache_dir: str = DEFAULT_CACHE_DIR,
    key_pattern: str = VAGRANT_KEY_GLOB,
    boot_code_path: str = MBR_CODE,
    log: Optional[Callable[[str], None]] = None,
    profile: str = "stack",
) -> Path:
    """The libvirt Vagrant box of ``release`` for ``profile`` with the stackha packages
    ``debs``, as ``out_dir/stackha-<release>.box`` (:func:`box_path`; see the module's text);
    its path.

    Everything the build needs from the host is checked before the release's tree is built
    (minutes when the cache does not hold it). Raises LabError naming what is missing or the
    step that failed.
    """
    check_release(release)
    if size_gib < 1:
        raise LabError(f"a disk of {size_gib} GiB: 1 or more")
    if not debs:
        raise LabError("no stackha packages to install in the box")
    for deb in debs:
        if not deb.is_file():
            raise LabError(f"{deb}: no such package file")
    public_key = insecure_public_key(key_pattern)
    boot_code = read_boot_code(boot_code_path)
    missing = missing_programs(HOST_PROGRAMS)
    if missing:
        raise LabError(f"building a box needs {', '.join(missing)}: install them")
    tree = vm_tree(runner, release, cache_dir, log, profile)
    made_of = box_recipe(tree, debs, size_gib)
    target = box_path(out_dir, release, profile)
    if target.is_file() and recorded_recipe(target) == made_of:
        (log or (lambda line: None))(f"box: {target} (cached: same tree and packages)")
        return target
    box = box_from_tree(
        runner,
        tree,
        release,
        debs,
        out_dir,
        public_key,
        boot_code,
        size_gib,
        log=log,
        profile=profile,
    )
    record_recipe(box, made_of)
    return box


# -- the cache: a box is rebuilt when its tree (named by its package list) or a package changes


def box_recipe(tree: Path, debs: Sequence[Path], size_gib: int) -> dict[str, object]:
    """What a box is made of: its tree's name (the cache names a tree by its release, package
    list and mirror), the sha256 of each stackha package, the disk's size."""
    return {
        "tree": tree.name,
        "packages": {deb.name: hashlib.sha256(deb.read_bytes()).hexdigest() for deb in debs},
        "size_gib": size_gib,
    }


def recipe_path(box: Path) -> Path:
    return box.with_name(box.name + ".json")


def recorded_recipe(box: Path) -> Optional[dict[str, object]]:
    """The recipe recorded beside ``box``, or None (none, or unreadable: rebuild)."""
    try:
        recorded = json.loads(recipe_path(box).read_text())
    except (OSError, ValueError):
        return None
    return recorded if isinstance(recorded, dict) else None


def record_recipe(box: Path, recipe: Mapping[str, object]) -> None:
    recipe_path(box).write_text(json.dumps(recipe, indent=1, sort_keys=True) + "\n")
