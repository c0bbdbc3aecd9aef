import pytest
from stackha.ocf.spec import Action, AgentSpec, Parameter, parse_parameters

SPEC = AgentSpec(
    name="sample",
    version="1.0",
    shortdesc="s",
    longdesc="l",
    parameters=(
        Parameter("address", "a", "a", required=True),
        Parameter("port", "p", "p", type="integer", default=80, minimum=1, maximum=65535),
        Parameter("tls", "t", "t", type="boolean", default=False),
        Parameter("mode", "m", "m", type="select", choices=("fast", "safe"), default="safe"),
        Parameter("password", "pw", "pw", secret=True),
        Parameter("old_port", "o", "o", type="integer", replaced_by="port"),
    ),
    actions=(Action("start", 20),),
)


def test_values_are_converted_to_their_declared_types():
    """Integers, booleans and selects arrive typed; unset ones take their defaults."""
    parsed = parse_parameters(SPEC, {"address": "10.0.0.1", "port": "8080", "tls": "yes"})
    assert parsed.problems == ()
    assert parsed.config.address == "10.0.0.1"
    assert parsed.config.port == 8080
    assert parsed.config.tls is True
    assert parsed.config.mode == "safe"


def test_every_problem_is_reported_and_names_the_parameter_and_value():
    """A missing required value and each bad value are separate problems, each naming itself."""
    parsed = parse_parameters(SPEC, {"port": "99999", "tls": "maybe", "mode": "slow"})
    messages = [str(p) for p in parsed.problems]
    assert messages == [
        "parameter address: is required but not set",
        "parameter port: 99999 is above the maximum 65535",
        "parameter tls: 'maybe' is not a boolean (use true or false)",
        "parameter mode: 'slow' is not one of fast, safe",
    ]
    assert parsed.problems[0].missing


def test_an_empty_value_counts_as_unset():
    """Pacemaker passes parameters set to "" as empty strings: they mean "use the default"."""
    parsed = parse_parameters(SPEC, {"address": "x", "port": ""})
    assert parsed.config.port == 80


def test_a_bad_secret_value_is_never_echoed():
    """The problem text for a secret parameter does not contain its value."""
    spec = AgentSpec(
        "s",
        "1",
        "s",
        "l",
        (Parameter("key", "k", "k", type="integer", secret=True),),
        (Action("start", 1),),
    )
    parsed = parse_parameters(spec, {"key": "hunter2"})
    assert "hunter2" not in str(parsed.problems[0])
    assert "hunter2" not in repr(parsed.config)


def test_secret_values_are_listed_for_masking():
    parsed = parse_parameters(SPEC, {"address": "a", "password": "s3cret"})
    assert parsed.config.secret_values == ("s3cret",)
    assert "s3cret" not in repr(parsed.config)


def test_a_deprecated_name_stands_in_for_its_replacement_with_a_warning():
    parsed = parse_parameters(SPEC, {"address": "a", "old_port": "81"})
    assert parsed.config.port == 81
    assert parsed.warnings == ("parameter old_port is deprecated, use port instead",)


def test_config_is_read_only():
    parsed = parse_parameters(SPEC, {"address": "a"})
    with pytest.raises(AttributeError):
        parsed.config.port = 1  # type: ignore[misc]


def test_bad_declarations_are_refused_when_the_agent_is_written():
    with pytest.raises(ValueError):
        Parameter("x", "x", "x", type="float")
    with pytest.raises(ValueError):
        Parameter("x", "x", "x", type="select")
    with pytest.raises(ValueError):
        Parameter("x", "x", "x", required=True, default="d")
    with pytest.raises(ValueError):
        AgentSpec("a", "1", "s", "l", (Parameter("x", "x", "x"), Parameter("x", "y", "y")), ())
