"""Every fence agent in fence/, every action, options on argv and on stdin, generated (issue 15,
item 5): exit 0 or 1 (2 for status of an outlet that is off), every message one line starting
ERROR: or WARNING:, no traceback, and no secret — neither a secret option nor what a
password_script printed — in any output. The device is a fake (a real one would be on the
network); the agent's own make_device still runs first, to check its settings. password_script
is a real script (printing and succeeding, printing and failing, hanging past a short
login_timeout, missing), run by the real runner.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest
from fakes import FakeClock
from hostile import SECRET, any_value, counted, decoy_paths, make_run_dir
from hypothesis import given
from hypothesis import strategies as st
from stackha.fencing.agent import FenceAgent, main
from stackha.fencing.agents import MODULES, declaration
from stackha.runner import SubprocessRunner

AGENTS = {name: declaration(name) for name in MODULES}
SCRIPTS = {
    "prints": f"#!/bin/sh\necho {SECRET}\n",
    "fails": f"#!/bin/sh\necho {SECRET}\necho {SECRET} >&2\nexit 3\n",
    "hangs": f"#!/bin/sh\necho {SECRET}\nexec sleep 30\n",
    "silent": "#!/bin/sh\nexit 0\n",
}


class AnyPlugDevice:
    """A device that answers for any plug and obeys at once."""

    def __init__(self) -> None:
        self.state: dict[object, str] = {}

    def login(self) -> None:
        pass

    def get_power(self, plug):
        return self.state.get(plug, "on")

    def set_power(self, plug, state):
        self.state[plug] = state

    def list_outlets(self):
        return {"1": "db1"}

    def logout(self) -> None:
        pass


def agent_with_fake_device(real: FenceAgent) -> FenceAgent:

    def make_device(config, deadline):
        real.make_device(config, deadline)  # its checks of the settings, no connection
        return AnyPlugDevice()

    return FenceAgent(spec=real.spec, make_device=make_device, validate=real.validate)


def options_of(data, spec, paths: list[str], scripts: dict[str, str]) -> list[tuple[str, str]]:
    hostile = any_value(paths)
    pairs = []
    for option in spec.options:
        if option.name == "action":
            continue
        choice = data.draw(st.sampled_from(["unset", "plain", "hostile"]), option.name)
        if choice == "plain":
            plain = {"ip": "bmc", "username": "admin", "password": SECRET, "plug": "1"}
            value = plain.get(option.name) or (option.choices[0] if option.choices else "1")
            pairs.append((option.name, value))
        elif choice == "hostile":
            pairs.append((option.name, data.draw(hostile, f"{option.name}=")))
    script = data.draw(st.sampled_from(["none", *scripts, "missing"]), "password_script")
    if script != "none":
        pairs = [(n, v) for n, v in pairs if n not in ("password", "login_timeout")]
        path = scripts.get(script, "/nonexistent/stackha-pass")
        pairs.append(("password_script", f"{path} {data.draw(st.sampled_from(['n1', '$(id)']))}"))
        if script == "hangs":  # killed when its budget, login_timeout, is spent
            pairs.append(("login_timeout", "0.3"))
    if data.draw(st.booleans(), "unknown option"):
        pairs.append((data.draw(st.sampled_from(["bogus", "a\nERROR: forged", "\udcff"])), "1"))
    return pairs


@pytest.mark.parametrize("name", sorted(AGENTS))
@given(data=st.data())
def test_a_fence_agent_keeps_its_contract_on_any_input(name, data):
    """Any options, on argv or stdin: exit 0/1 (2: status off), one-line messages, no
    traceback, no secret."""
    counted()
    agent = agent_with_fake_device(AGENTS[name])
    spec = agent.spec
    with tempfile.TemporaryDirectory(prefix="stackha-fuzz-") as root:
        run = make_run_dir(Path(root))
        scripts = {}
        for kind, text in SCRIPTS.items():
            path = Path(root, f"pass-{kind}")
            path.write_text(text)
            path.chmod(0o755)
            scripts[kind] = str(path)
        pairs = options_of(data, spec, decoy_paths(run), scripts)
        action = data.draw(
            st.sampled_from([*spec.actions, "meta-data", "list", "bogus", "", "Status\n"]),
            "action",
        )
        on_argv = data.draw(st.booleans(), "options on argv")
        if on_argv:
            argv = [name, *(f"--{n}={v}" for n, v in pairs), f"--action={action}"]
            stdin = ""
        else:
            argv = [name]
            stdin = "".join(f"{n}={v}\n" for n, v in pairs) + f"action={action}\n"
        out, err = io.StringIO(), io.StringIO()
        code = main(
            agent,
            argv,
            io.StringIO(stdin),
            runner=SubprocessRunner(),
            clock=FakeClock(),
            stdout=out,
            stderr=err,
        )
        stdout, stderr = out.getvalue(), err.getvalue()
        assert code in (0, 1, 2), f"exit {code}\n{stderr}"
        if code == 2:
            assert action.strip().lower() in ("status", "monitor"), stderr
        for text in (stdout, stderr):
            assert "Traceback" not in text, text[-2000:]
            assert SECRET not in text, f"the password was written out:\n{text[-2000:]}"
        for line in stderr.splitlines():
            assert line.startswith(("ERROR: ", "WARNING: ")), f"a message of two lines:\n{stderr}"
            assert len(line) < 1200, line[:200]
        errors = [line for line in stderr.splitlines() if line.startswith("ERROR: ")]
        assert len(errors) == (1 if code == 1 else 0), stderr
