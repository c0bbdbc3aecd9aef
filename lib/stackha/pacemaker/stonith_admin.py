"""``stonith_admin --history``: whether Pacemaker has just fenced a node."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

    from stackha.runner import Runner

TOOL = "/usr/sbin/stonith_admin"
RECENT_S = 900.0
# "2026-11-25 10:43:07Z", "2026-11-25 10:43:07.123 +01:00", "2026-11-25 10:43:07 +0100"
_STAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?"
)


def parse_completed(text: str) -> Optional[float]:
    """A fence event's ``completed`` as a Unix time; None when it cannot be read (a local
    time without a zone is read as local time)."""
    import calendar
    import time

    match = _STAMP.search(text or "")
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    zone = match.group(7)
    if zone is None:
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return float(seconds)


def last_success(xml_text: str, node: str) -> Optional[float]:
    """When ``node`` was last fenced successfully (off or reboot), from the XML history."""
    root = ET.fromstring(xml_text)
    times = [
        parse_completed(event.get("completed", ""))
        for event in root.iter("fence_event")
        if event.get("target") == node
        and event.get("status") == "success"
        and event.get("action") in ("off", "reboot")
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def fenced_recently(
    runner: Runner, node: str, *, now: float, timeout: float, within: float = RECENT_S
) -> bool:
    """Whether Pacemaker fenced ``node`` successfully in the last ``within`` seconds."""
    result = runner.run([TOOL, "--history", node, "--output-as=xml"], timeout=timeout)
    if not result.ok:
        return False
    try:
        when = last_success(result.stdout, node)
    except ET.ParseError:
        return False
    return when is not None and now - within <= when <= now + 60.0
