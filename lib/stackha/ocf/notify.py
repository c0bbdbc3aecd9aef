"""Clone notification data (``OCF_RESKEY_CRM_meta_notify_*``).

Pacemaker passes, for each set X of clone instances, ``notify_X_resource`` and ``notify_X_uname``
as space-separated lists (a lone space when empty). It still emits the legacy ``master``/``slave``
names beside ``promoted``/``unpromoted``; we read the new names and fall back to the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SETS = ("start", "stop", "active", "promote", "demote", "promoted", "unpromoted")
LEGACY_NAMES = {"promoted": "master", "unpromoted": "slave"}


@dataclass(frozen=True)
class Instance:
    """One clone instance: its resource id (``galera:1``) and the node it is on."""

    resource: str
    uname: str


@dataclass(frozen=True)
class NotifyData:
    type: str  # "pre" or "post"
    operation: str  # "start", "stop", "promote" or "demote"
    sets: Mapping[str, tuple[Instance, ...]]
    inactive: tuple[str, ...]
    available_unames: tuple[str, ...]
    all_unames: tuple[str, ...]

    def unames(self, name: str) -> tuple[str, ...]:
        """Node names of set ``name`` (one of :data:`SETS`), in Pacemaker's order."""
        return tuple(instance.uname for instance in self.sets.get(name, ()))

    def active_unames_after(self) -> frozenset[str]:
        """Nodes where an instance is active once this transition's operation has run.

        Pacemaker's table: before the operation (pre) the active set is as given; after it
        (post) it is active - stop + start.
        """
        active = set(self.unames("active"))
        if self.type == "post":
            active -= set(self.unames("stop"))
            active |= set(self.unames("start"))
        return frozenset(active)


def _words(text: str | None) -> tuple[str, ...]:
    return tuple((text or "").split())


def parse_notify(meta: Mapping[str, str]) -> NotifyData:
    """Read the notify variables from the meta attributes (``notify_*`` keys)."""
    sets: dict[str, tuple[Instance, ...]] = {}
    for name in SETS:
        resources = meta.get(f"notify_{name}_resource")
        unames = meta.get(f"notify_{name}_uname")
        legacy = LEGACY_NAMES.get(name)
        if legacy and resources is None and unames is None:
            resources = meta.get(f"notify_{legacy}_resource")
            unames = meta.get(f"notify_{legacy}_uname")
        sets[name] = tuple(
            Instance(resource, uname) for resource, uname in zip(_words(resources), _words(unames))
        )
    return NotifyData(
        type=meta.get("notify_type", ""),
        operation=meta.get("notify_operation", ""),
        sets=sets,
        inactive=_words(meta.get("notify_inactive_resource")),
        available_unames=_words(meta.get("notify_available_uname")),
        all_unames=_words(meta.get("notify_all_uname")),
    )
