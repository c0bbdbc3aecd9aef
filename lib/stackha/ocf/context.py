"""The environment of one agent call, read once in ``main()``.

Pacemaker passes everything through the environment: parameters as ``OCF_RESKEY_<name>``, meta
attributes as ``OCF_RESKEY_CRM_meta_<name>`` (times in milliseconds), notify data as
``OCF_RESKEY_CRM_meta_notify_*``. Nothing else in stackha reads ``os.environ``.

Reading never fails: a meta attribute Pacemaker would never send (``clone_max=abc``, a 30-digit
``timeout``, bytes that are not UTF-8, a 100 KB node name) is left out of :attr:`Context.meta`,
as if absent, and named in :attr:`Context.warnings` for ``main()`` to log. Failing instead would
fail a stop, and a failed stop gets the node fenced.
"""

from __future__ import annotations

from stackha.ocf.spec import is_utf8, shown
from stackha.pacemaker.values import is_true
from stackha.record import Record

# typing is for the type checker only, and notify data is parsed only for notify actions
# (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Optional

    from stackha.ocf.notify import NotifyData

PARAMETER_PREFIX = "OCF_RESKEY_"
META_PREFIX = "OCF_RESKEY_CRM_meta_"
DEFAULT_OCF_ROOT = "/usr/lib/ocf"
DEFAULT_RSCTMP = "/run/resource-agents"  # resource-agents' HA_RSCTMP: agents' scratch state
# Used when Pacemaker gives no op timeout (an agent run by hand): long enough for a slow start.
DEFAULT_TIMEOUT_S = 20.0
# Meta attributes stackha reads as numbers. Pacemaker sends them as decimal integers (intervals
# and timeouts in ms) that fit its C int; anything else did not come from Pacemaker.
NUMERIC_META = (
    "interval",
    "timeout",
    "clone_max",
    "clone_node_max",
    "promoted_max",
    "promoted_node_max",
    "master_max",
    "master_node_max",
)
MAX_META_NUMBER = 2**31 - 1
# A node name is a host name (at most 253 characters); other meta values are short words or
# lists of resource and node names: 64 KiB is far more than any cluster's.
MAX_NODE_NAME_CHARS = 255
MAX_META_CHARS = 65536
# A resource id is an XML ID, and stackha names files (up to 255 bytes) after it.
MAX_INSTANCE_CHARS = 200


def _int_or_none(text: Optional[str]) -> Optional[int]:
    """A non-negative decimal number of ASCII digits that fits Pacemaker's int, else None."""
    if not text or len(text) > 10 or not (text.isascii() and text.isdigit()):
        return None
    number = int(text, 10)
    return number if number <= MAX_META_NUMBER else None


def _meta_problem(name: str, value: str) -> Optional[str]:
    """Why Pacemaker would never send this meta attribute value; None when it might."""
    if not is_utf8(value):
        return "not UTF-8"
    if len(value) > (MAX_NODE_NAME_CHARS if name == "on_node" else MAX_META_CHARS):
        return f"{len(value)} characters long"
    if name in NUMERIC_META and value != "" and _int_or_none(value) is None:
        return f"not a number of at most {MAX_META_NUMBER}"
    return None


def _version(major: Optional[str], minor: Optional[str]) -> Optional[tuple[int, int]]:
    major_number = _int_or_none(major)
    if major_number is None:
        return None
    return (major_number, _int_or_none(minor) or 0)


class Context(Record):
    """Who called us, for what, and with how much time.

    ``caller_ocf_version`` is the OCF API version the caller speaks (OCF_RA_VERSION_MAJOR and
    MINOR), None when it does not say; ``pretend_binaries_missing`` is ocf-tester asking for
    its "probe with every binary missing" check.
    """

    __slots__ = (
        "action",
        "instance",
        "resource_type",
        "ocf_root",
        "parameters",
        "meta",
        "caller_ocf_version",
        "interval_ms",
        "timeout_ms",
        "check_level",
        "node",
        "notify",
        "exit_reason_prefix",
        "pretend_binaries_missing",
        "log_facility",
        "log_file",
        "debug_log_file",
        "debug",
        "rsctmp",
        "warnings",
    )
    action: str
    instance: str
    resource_type: str
    ocf_root: str
    parameters: Mapping[str, str]
    meta: Mapping[str, str]
    caller_ocf_version: Optional[tuple[int, int]]
    interval_ms: Optional[int]
    timeout_ms: Optional[int]
    check_level: int
    node: Optional[str]
    notify: Optional[NotifyData]
    exit_reason_prefix: str
    pretend_binaries_missing: bool
    log_facility: Optional[str]
    log_file: Optional[str]
    debug_log_file: Optional[str]
    debug: bool
    rsctmp: str
    warnings: tuple[str, ...]

    def __init__(
        self,
        action: str,
        instance: str,
        resource_type: str,
        ocf_root: str,
        parameters: Mapping[str, str],
        meta: Mapping[str, str],
        caller_ocf_version: Optional[tuple[int, int]],
        interval_ms: Optional[int],
        timeout_ms: Optional[int],
        check_level: int,
        node: Optional[str],
        notify: Optional[NotifyData] = None,
        exit_reason_prefix: str = "ocf-exit-reason:",
        pretend_binaries_missing: bool = False,
        log_facility: Optional[str] = None,
        log_file: Optional[str] = None,
        debug_log_file: Optional[str] = None,
        debug: bool = False,
        rsctmp: str = DEFAULT_RSCTMP,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self._freeze(locals())

    @property
    def is_probe(self) -> bool:
        """A monitor with no (or an unset) interval: Pacemaker asking "is it running here?"."""
        return self.action == "monitor" and not self.interval_ms

    @property
    def instance_problem(self) -> Optional[str]:
        """Why ``instance`` cannot be a Pacemaker resource id; None when it can be one."""
        if not is_utf8(self.instance):
            return "is not UTF-8"
        if len(self.instance) > MAX_INSTANCE_CHARS:
            return f"is {len(self.instance)} characters long, more than {MAX_INSTANCE_CHARS}"
        if "/" in self.instance or not self.instance.isprintable() or " " in self.instance:
            return "holds a slash, a space or a control character"
        return None

    @property
    def clone_max(self) -> Optional[int]:
        """How many instances the clone has (None: not a clone)."""
        return _int_or_none(self.meta.get("clone_max"))

    @property
    def is_clone(self) -> bool:
        return self.clone_max is not None

    @property
    def is_promotable(self) -> bool:
        return is_true(self.meta.get("promotable")) or bool(
            _int_or_none(self.meta.get("promoted_max") or self.meta.get("master_max"))
        )

    @property
    def resource_name(self) -> str:
        """The resource's name without a clone instance suffix (``galera:2`` → ``galera``)."""
        return self.instance.split(":", 1)[0]

    @property
    def timeout_s(self) -> float:
        """The action's time budget in seconds."""
        if self.timeout_ms and self.timeout_ms > 0:
            return self.timeout_ms / 1000.0
        return DEFAULT_TIMEOUT_S


def _notify(meta: Mapping[str, str]) -> NotifyData:
    from stackha.ocf.notify import parse_notify

    return parse_notify(meta)


def read_context(argv: list[str], environ: Mapping[str, str]) -> Context:
    """Build the :class:`Context` from argv and the environment."""
    # OCF: the action is the only argument; extra ones are ignored. ocf-tester also sets
    # __OCF_ACTION, which the argument wins over.
    action = argv[1] if len(argv) > 1 else environ.get("__OCF_ACTION", "")
    parameters = {
        key[len(PARAMETER_PREFIX) :]: value
        for key, value in environ.items()
        if key.startswith(PARAMETER_PREFIX) and not key.startswith("OCF_RESKEY_CRM_meta_")
    }
    meta = {}
    warnings = []
    for key, value in environ.items():
        if key.startswith(META_PREFIX):
            name = key[len(META_PREFIX) :]
            problem = _meta_problem(name, value)
            if problem is None:
                meta[name] = value
            else:
                warnings.append(f"ignoring {key}={shown(value)}: {problem}, not from Pacemaker")
    check_level_text = environ.get("OCF_CHECK_LEVEL") or parameters.get("OCF_CHECK_LEVEL") or ""
    check_level = _int_or_none(check_level_text)
    if check_level is None:
        if check_level_text:
            warnings.append(f"ignoring OCF_CHECK_LEVEL={shown(check_level_text)}: not a number")
        check_level = 0
    resource_type = environ.get("OCF_RESOURCE_TYPE") or (argv[0].rsplit("/", 1)[-1] if argv else "")

    def first(*names: str) -> Optional[str]:
        for name in names:
            value = environ.get(name)
            if value:
                return value
        return None

    facility = first("HA_LOGFACILITY", "HA_logfacility", "PCMK_logfacility")
    if facility and facility.lower() == "none":
        facility = None
    debug_text = first("HA_debug", "HA_DEBUG", "PCMK_debug") or "0"
    return Context(
        action=action,
        instance=environ.get("OCF_RESOURCE_INSTANCE", resource_type),
        resource_type=resource_type,
        ocf_root=environ.get("OCF_ROOT", DEFAULT_OCF_ROOT),
        parameters=parameters,
        meta=meta,
        caller_ocf_version=_version(
            environ.get("OCF_RA_VERSION_MAJOR"), environ.get("OCF_RA_VERSION_MINOR")
        ),
        interval_ms=_int_or_none(meta.get("interval")),
        timeout_ms=_int_or_none(meta.get("timeout")),
        check_level=check_level,
        node=meta.get("on_node") or None,
        notify=_notify(meta) if action == "notify" else None,
        exit_reason_prefix=environ.get("OCF_EXIT_REASON_PREFIX", "ocf-exit-reason:"),
        pretend_binaries_missing=bool(environ.get("OCF_TESTER_FAIL_HAVE_BINARY")),
        log_facility=facility,
        log_file=first("HA_LOGFILE", "HA_logfile", "PCMK_logfile"),
        debug_log_file=first("HA_DEBUGLOG", "HA_debuglog"),
        # HA_debug is "1"/"yes"/"true" or a level number; "0" and "no" mean off (ocf.py gets
        # this wrong and turns debug on for any string, "0" included).
        debug=is_true(debug_text) or (_int_or_none(debug_text) or 0) > 0,
        rsctmp=environ.get("HA_RSCTMP") or DEFAULT_RSCTMP,
        warnings=tuple(warnings),
    )
