"""The users and groups of a node's system, read from its own ``/etc/passwd`` and ``/etc/group``.

A node of another Debian release runs a tree whose packages made their system users in another
order than the host's did: hacluster is 103 on a Debian 12 host and 100 in a Debian 13 tree,
mysql 102 and 100, rabbitmq 108 and 105. Files the host writes for a node (its CIB, its state
directories) must carry the node's ids, so every owner goes by name through the node's own
account files, never through the host's ``pwd``/``grp``. A node that runs the host's own files
reads ``/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from stackha.lab.namespaces import LabError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Union


def _read_ids(path: Path) -> dict[str, tuple[int, int]]:
    """name → (third field, fourth field) of each ``name:x:id:id2:...`` line (for /etc/group
    the fourth field is the member list: only the first number is used)."""
    ids: dict[str, tuple[int, int]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise LabError(f"{path}: no such file: not a root filesystem") from None
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 4 or not fields[2].isdigit():
            continue
        second = int(fields[3]) if fields[3].isdigit() else -1
        ids.setdefault(fields[0], (int(fields[2]), second))
    return ids


def _renumbered(old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]]) -> dict[int, int]:
    """old id → new id for every name both know under different ids."""
    return {
        ids[0]: new[name][0] for name, ids in old.items() if name in new and new[name][0] != ids[0]
    }


class Accounts:
    """Users and groups of the system rooted at ``root``."""

    def __init__(self, root: Union[str, Path] = "/") -> None:
        self.root = Path(root)
        self._users: Optional[dict[str, tuple[int, int]]] = None
        self._groups: Optional[dict[str, tuple[int, int]]] = None

    @property
    def users(self) -> dict[str, tuple[int, int]]:
        if self._users is None:
            self._users = _read_ids(self.root / "etc/passwd")
        return self._users

    @property
    def groups(self) -> dict[str, tuple[int, int]]:
        if self._groups is None:
            self._groups = _read_ids(self.root / "etc/group")
        return self._groups

    def has_user(self, user: str) -> bool:
        return user in self.users

    def uid(self, user: str) -> int:
        try:
            return self.users[user][0]
        except KeyError:
            raise LabError(f"no user {user} in {self.root / 'etc/passwd'}") from None

    def gid(self, group: str) -> int:
        try:
            return self.groups[group][0]
        except KeyError:
            raise LabError(f"no group {group} in {self.root / 'etc/group'}") from None

    def ids(self, user: str, group: Optional[str] = None) -> tuple[int, int]:
        """(uid, gid) of ``user`` and of ``group``, or of the user's own primary group."""
        uid = self.uid(user)
        return uid, self.gid(group) if group else self.users[user][1]

    def take_over(self, top: Path, old: Accounts) -> None:
        """Every file under ``top`` (``top`` too) owned by a user or group of ``old`` gets the
        id of the same name here: the disks of a node reinstalled with another release keep
        their owners by name (mysql is 100 on one and 102 on the other). Ids ``old`` has no name
        for, or that have no name here, stay as they are."""
        uids = _renumbered(old.users, self.users)
        gids = _renumbered(old.groups, self.groups)
        if not uids and not gids:
            return

        def take(path: str) -> None:
            info = os.lstat(path)
            uid, gid = uids.get(info.st_uid, info.st_uid), gids.get(info.st_gid, info.st_gid)
            if (uid, gid) != (info.st_uid, info.st_gid):
                mode = info.st_mode & 0o7777
                os.lchown(path, uid, gid)
                if not os.path.islink(path) and mode & 0o6000:
                    os.chmod(path, mode)  # chown clears set-id bits

        # Each path once: ids can move in a chain between releases (one's rabbitmq id is the
        # other's haproxy), so a second mapping of an already mapped path changes its owner
        # again. A directory is taken as its parent's entry, never again as the walk's ".".
        take(str(top))
        for directory, subdirs, files in os.walk(top):
            for name in [*subdirs, *files]:
                take(os.path.join(directory, name))

    def chown(self, path: Union[str, Path], user: str, group: Optional[str] = None) -> None:
        """``chown user:group path`` with this system's ids (the link itself, not its target)."""
        uid, gid = self.ids(user, group)
        os.lchown(path, uid, gid)
