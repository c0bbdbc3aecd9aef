"""How Pacemaker spells values, the same in a CIB, in crm_mon's and crm_simulate's XML and in
an agent's environment: roles, booleans, scores. Nothing is imported: the OCF agents' monitor
path reads booleans from here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# Roles by their Pacemaker 2.1 names.
PROMOTED = "Promoted"
UNPROMOTED = "Unpromoted"
STARTED = "Started"
STOPPED = "Stopped"
# Pacemaker 2.1 still accepts the pre-2.1 role names (schema >= 3.7 has both); 3.0 does not.
_ROLE_ALIASES = {"Master": PROMOTED, "Slave": UNPROMOTED}
INFINITY = 1_000_000


def is_true(value: Optional[str]) -> bool:
    """Pacemaker's crm_is_true (surrounding blanks ignored, as in an agent's environment)."""
    return value is not None and value.strip().lower() in ("true", "on", "yes", "y", "1")


def normal_role(role: Optional[str]) -> str:
    """A role by its Pacemaker 2.1 name; no role is Started (any active role)."""
    if not role:
        return STARTED
    return _ROLE_ALIASES.get(role, role)


def parse_score(text: Optional[str]) -> Optional[int]:
    """Pacemaker's char2score; None for what cannot be told offline (node-health colors)."""
    if text is None:
        return 0
    value = text.strip().lower()
    if value in ("infinity", "+infinity"):
        return INFINITY
    if value == "-infinity":
        return -INFINITY
    try:
        return max(-INFINITY, min(INFINITY, int(value)))
    except ValueError:
        return None
