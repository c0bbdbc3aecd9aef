"""One declaration of an agent: its parameters and actions.

From an :class:`AgentSpec` come the OCF meta-data (:mod:`stackha.ocf.metadata`), the validation of
``OCF_RESKEY_*`` into a typed, frozen :class:`Config` (:func:`parse_parameters`), and the docs page
(:mod:`stackha.ocf.docs`). There is no second source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping

from stackha.ocf.log import one_line
from stackha.record import Record

# typing is imported for the type checker only: agents start fast (see stackha.record).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Optional, Union

    Value = Union[str, int, bool]

TRUE_WORDS = frozenset({"1", "yes", "true", "on", "y"})
FALSE_WORDS = frozenset({"0", "no", "false", "off", "n"})

PARAMETER_TYPES = ("string", "integer", "boolean", "select")
# Longer values are refused: 4096 is PATH_MAX, the longest a path parameter can usefully be.
MAX_VALUE_CHARS = 4096
SHOWN_CHARS = 100  # how much of a bad value a problem shows
MAX_INTEGER_DIGITS = 18


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to its first :data:`SHOWN_CHARS` characters, on one
    line and with each byte that was not UTF-8 as ``\\xNN``."""
    if len(text) <= SHOWN_CHARS:
        return f"'{one_line(text)}'"
    return f"'{one_line(text[:SHOWN_CHARS])}'... ({len(text)} characters)"


def is_utf8(text: str) -> bool:
    """Whether ``text`` came from valid UTF-8: Python keeps each byte that was not as a lone
    surrogate (surrogateescape), which nothing can print or write as UTF-8."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ascii_decimal(text: str) -> int:
    """An integer written with ASCII digits and an optional leading ``-``, nothing else: not
    ``٣`` or ``1_0`` or `` 7 `` (which ``int()`` takes). ValueError otherwise."""
    digits = text[1:] if text.startswith("-") else text
    if not (0 < len(digits) <= MAX_INTEGER_DIGITS and digits.isascii() and digits.isdigit()):
        raise ValueError(f"{shown(text)} is not an integer")
    return int(text, 10)


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without parsing it (the
    parser recurses: 100,000 nested brackets would raise RecursionError)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class Parameter(Record):
    """One instance parameter (``OCF_RESKEY_<name>``)."""

    __slots__ = (
        "name",
        "shortdesc",
        "longdesc",
        "type",
        "default",
        "required",
        "secret",
        "reloadable",
        "choices",
        "minimum",
        "maximum",
        "unique_group",
        "replaced_by",
        "max_length",
        "json_depth",
    )
    name: str
    shortdesc: str
    longdesc: str
    type: str
    default: Optional[Value]
    required: bool
    secret: bool
    reloadable: bool
    choices: tuple[str, ...]
    minimum: Optional[int]
    maximum: Optional[int]
    unique_group: Optional[str]
    replaced_by: Optional[str]
    max_length: int
    json_depth: Optional[int]  # set: the value is JSON nested at most this deep

    def __init__(
        self,
        name: str,
        shortdesc: str,
        longdesc: str,
        type: str = "string",
        default: Optional[Value] = None,
        required: bool = False,
        secret: bool = False,
        reloadable: bool = False,
        choices: tuple[str, ...] = (),
        minimum: Optional[int] = None,
        maximum: Optional[int] = None,
        unique_group: Optional[str] = None,
        replaced_by: Optional[str] = None,
        max_length: int = MAX_VALUE_CHARS,
        json_depth: Optional[int] = None,
    ) -> None:
        self._freeze(locals())
        if self.type not in PARAMETER_TYPES:
            raise ValueError(f"parameter {self.name}: unknown type {self.type!r}")
        if self.type == "select" and not self.choices:
            raise ValueError(f"parameter {self.name}: a select needs choices")
        if self.required and self.default is not None:
            raise ValueError(f"parameter {self.name}: a required parameter has no default")
        if self.json_depth is not None and self.type != "string":
            raise ValueError(f"parameter {self.name}: only a string holds JSON")

    def default_text(self) -> Optional[str]:
        """The default as the text an operator would type."""
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)

    def convert(self, text: str) -> Value:
        """Turn the text Pacemaker passes into the declared type; ValueError names the problem,
        showing at most the first :data:`SHOWN_CHARS` characters of the value."""
        if len(text) > self.max_length:
            raise ValueError(f"is {len(text)} characters long, more than {self.max_length}")
        if not is_utf8(text):
            raise ValueError(f"{shown(text)} is not valid UTF-8")
        if self.json_depth is not None:
            return self._check_json(text)
        if self.type == "integer":
            number = ascii_decimal(text)
            if self.minimum is not None and number < self.minimum:
                raise ValueError(f"{number} is below the minimum {self.minimum}")
            if self.maximum is not None and number > self.maximum:
                raise ValueError(f"{number} is above the maximum {self.maximum}")
            return number
        if self.type == "boolean":
            word = text.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError(f"{shown(text)} is not a boolean (use true or false)")
        if self.type == "select" and text not in self.choices:
            raise ValueError(f"{shown(text)} is not one of {', '.join(self.choices)}")
        if text and self.is_path() and not text.startswith("/"):
            # relative to whatever directory Pacemaker runs the agent in: never what was meant
            raise ValueError(f"{shown(text)} is not an absolute path")
        return text

    def is_path(self) -> bool:
        """A file or directory parameter: a string whose default is an absolute path."""
        return self.type == "string" and str(self.default or "").startswith("/")

    def _check_json(self, text: str) -> str:
        import json

        assert self.json_depth is not None
        if nesting_depth(text) > self.json_depth:
            raise ValueError(f"nests deeper than {self.json_depth} levels")
        try:
            json.loads(text)
        except ValueError as err:  # JSONDecodeError names the line and column
            raise ValueError(f"is not JSON: {err}") from None
        return text


class Action(Record):
    """One action as advertised in the meta-data (its default operation)."""

    __slots__ = ("name", "timeout", "interval", "depth", "role")
    name: str
    timeout: int
    interval: Optional[int]
    depth: Optional[int]
    role: Optional[str]  # "Promoted" / "Unpromoted", as Pacemaker spells them

    def __init__(
        self,
        name: str,
        timeout: int,
        interval: Optional[int] = None,
        depth: Optional[int] = None,
        role: Optional[str] = None,
    ) -> None:
        self._freeze(locals())


class AgentSpec(Record):
    """Everything declared about an agent."""

    __slots__ = ("name", "version", "shortdesc", "longdesc", "parameters", "actions", "example")
    name: str
    version: str
    shortdesc: str
    longdesc: str
    parameters: tuple[Parameter, ...]
    actions: tuple[Action, ...]
    example: str  # a usage example for the docs page, e.g. the pcs command an operator types

    def __init__(
        self,
        name: str,
        version: str,
        shortdesc: str,
        longdesc: str,
        parameters: tuple[Parameter, ...],
        actions: tuple[Action, ...],
        example: str = "",
    ) -> None:
        self._freeze(locals())
        names = [p.name for p in self.parameters]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"agent {self.name}: duplicate parameters {sorted(duplicates)}")

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise KeyError(name)

    @property
    def action_names(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for action in self.actions:
            seen.setdefault(action.name, None)
        return tuple(seen)


if TYPE_CHECKING:
    ConfigBase = Mapping[str, Optional[Value]]
else:
    ConfigBase = Mapping


class Config(ConfigBase):
    """Typed, read-only parameter values: ``config.port`` or ``config["port"]``."""

    _values: dict[str, Optional[Value]]
    _secrets: tuple[str, ...]

    def __init__(self, values: Mapping[str, Optional[Value]], secrets: Sequence[str]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_secrets", tuple(secrets))

    def __getitem__(self, name: str) -> Optional[Value]:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Optional[Value]:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Config is read-only")

    def __repr__(self) -> str:
        shown = {k: ("***" if k in self._secrets and v else v) for k, v in self._values.items()}
        return f"Config({shown!r})"

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The values of secret parameters, for masking in logs."""
        return tuple(str(self._values[n]) for n in self._secrets if self._values.get(n))


class Problem(Record):
    """Why one parameter is unusable."""

    __slots__ = ("parameter", "message", "missing")
    parameter: str
    message: str
    missing: bool

    def __init__(self, parameter: str, message: str, missing: bool = False) -> None:
        self._freeze(locals())

    def __str__(self) -> str:
        return f"parameter {self.parameter}: {self.message}"


class ParsedParameters(Record):
    """The typed values, plus every problem found (values with problems fall back to defaults)."""

    __slots__ = ("config", "problems", "warnings")
    config: Config
    problems: tuple[Problem, ...]
    warnings: tuple[str, ...]

    def __init__(
        self, config: Config, problems: tuple[Problem, ...] = (), warnings: tuple[str, ...] = ()
    ) -> None:
        self._freeze(locals())


def parse_parameters(spec: AgentSpec, raw: Mapping[str, str]) -> ParsedParameters:
    """Convert raw ``OCF_RESKEY_*`` values (without the prefix) into a :class:`Config`.

    An empty value counts as unset, as in resource-agents. A value a parameter cannot take is a
    problem; the problem text names the parameter and the value, except for secrets.
    """
    values: dict[str, Optional[Value]] = {}
    problems: list[Problem] = []
    warnings: list[str] = []
    effective = dict(raw)
    for parameter in spec.parameters:
        if parameter.replaced_by and raw.get(parameter.name):
            warnings.append(
                f"parameter {parameter.name} is deprecated, use {parameter.replaced_by} instead"
            )
            # The old name stands in for its replacement when that one is unset.
            if not raw.get(parameter.replaced_by):
                effective[parameter.replaced_by] = raw[parameter.name]
    for parameter in spec.parameters:
        text = effective.get(parameter.name, "")
        if text == "":
            values[parameter.name] = parameter.default
            if parameter.required:
                problems.append(Problem(parameter.name, "is required but not set", missing=True))
            continue
        try:
            values[parameter.name] = parameter.convert(text)
        except ValueError as err:
            message = "has an invalid value" if parameter.secret else str(err)
            problems.append(Problem(parameter.name, message))
            values[parameter.name] = parameter.default
    secrets = [p.name for p in spec.parameters if p.secret]
    return ParsedParameters(Config(values, secrets), tuple(problems), tuple(warnings))
