"""Stop and a probe tell the truth against a real process (issue 15, items 1 and 5).

For each agent a stand-in runs: a real process whose /proc comm is the agent's program name
(set with prctl) and whose command line carries the instance's identifying argument, its pid
in the pid file the agent's parameter names. Then stop or a probe runs with every *other*
parameter generated: stop may exit 0 only when the stand-in is gone, a probe never says 7
while it runs. Only the stand-in may be signalled (hostile.GUARD); the test kills it in a
finally, by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from agent_runs import free_port
from hostile import GUARD, FailingRunner, any_value, counted, decoy_paths, make_run_dir
from hypothesis import event, given, settings
from hypothesis import strategies as st
from stackha.clock import SystemClock
from stackha.ocf.agent import main
from test_ocf_fuzz import AGENTS, ME, base_values, guarded_process_tables  # noqa: F401


def uwsgi_ini_arguments(values: dict[str, str]) -> list[str]:
    """An API agent's uwsgi master: its command line names the ini file."""
    return ["--ini", values["uwsgi_ini"]]


# What identifies each agent's instance: the program's name, the pid-file parameter, the
# parameters held fixed, and the stand-in's arguments built from them. An agent with
# leftovers and no entry here fails test_every_agent_that_runs_a_process_has_a_stand_in.
STAND_INS = {
    "galera": ("mariadbd", "pid", ("datadir",), lambda v: [f"--datadir={v['datadir']}"]),
    "haproxy": ("haproxy", "pidfile", ("config",), lambda v: ["-W", "-f", v["config"]]),
    # its own address and port: the distribution's memcached on another is not this one
    "memcached": (
        "memcached",
        "pidfile",
        ("address", "port"),
        lambda v: ["-u", "memcache", "-l", v["address"], "-p", v["port"]],
    ),
    # every API agent (stackha.agents.api_service, the one that takes a uwsgi ini): a uwsgi
    # master, known by its ini file
    **{
        name: ("uwsgi", "pidfile", ("mode", "uwsgi_ini", "uwsgi_binary"), uwsgi_ini_arguments)
        for name, agent in AGENTS.items()
        if "uwsgi_ini" in {parameter.name for parameter in agent.spec.parameters}
    },
    "rabbitmq": (
        "beam.smp",
        "pid_file",
        ("home",),
        lambda v: ["-home", v["home"], "-s", "rabbit", "boot"],
    ),
}
RUNS_A_PROCESS = sorted(name for name, agent in AGENTS.items() if agent.leftovers)

STAND_IN_CODE = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n"  # PR_SET_NAME
    "time.sleep(600)\n"
)


def test_every_agent_that_runs_a_process_has_a_stand_in():
    """A new agent with leftovers must say how its instance is recognised."""
    assert sorted(STAND_INS) == RUNS_A_PROCESS


def start_stand_in(comm: str, arguments: list[str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", STAND_IN_CODE, comm, *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    comm_file = Path(f"/proc/{process.pid}/comm")
    for _ in range(500):
        if comm_file.read_text().strip() == comm[:15]:
            return process
        time.sleep(0.01)
    process.kill()
    process.wait()
    raise AssertionError(f"the stand-in never took the name {comm}")


CASES = [(name, action) for name in RUNS_A_PROCESS for action in ("stop", "probe")]


@pytest.mark.parametrize("name, action", CASES, ids=[f"{n}-{a}" for n, a in CASES])
@settings(max_examples=max(5, settings().max_examples // 2))
@given(data=st.data())
def test_stop_and_probe_are_truthful_against_a_running_stand_in(name, action, data):
    """stop exits 0 only when the stand-in is gone; a probe never says 7 while it runs."""
    counted()
    comm, pid_parameter, fixed, arguments = STAND_INS[name]
    spec = AGENTS[name].spec
    with tempfile.TemporaryDirectory(prefix="stackha-fuzz-") as root:
        run = make_run_dir(Path(root))
        base = base_values(spec, run)
        base.update({"mode": "uwsgi", pid_parameter: f"{run['area']}/run/{name}.pid"})
        if "address" in fixed:  # memcached's instance: base_values leaves both unset
            base.update({"address": "127.0.0.1", "port": str(free_port())})
        if "uwsgi_binary" in base:  # the master's name is its binary's
            os.rename(base["uwsgi_binary"], f"{run['area']}/bin/uwsgi")
            base["uwsgi_binary"] = f"{run['area']}/bin/uwsgi"
        hostile = any_value(decoy_paths(run))
        env = {
            "OCF_ROOT": "/usr/lib/ocf",
            "HA_RSCTMP": run["rsctmp"],
            "OCF_RESOURCE_INSTANCE": f"{name}:0",
            "OCF_RESKEY_CRM_meta_timeout": "20000",
        }
        for parameter in spec.parameters:
            if parameter.name in (pid_parameter, *fixed):
                env[f"OCF_RESKEY_{parameter.name}"] = base[parameter.name]
                continue
            choice = data.draw(st.sampled_from(["base", "unset", "hostile"]), parameter.name)
            if choice == "base" and parameter.name in base:
                env[f"OCF_RESKEY_{parameter.name}"] = base[parameter.name]
            elif choice == "hostile":
                env[f"OCF_RESKEY_{parameter.name}"] = data.draw(hostile, f"{parameter.name}=")
        if data.draw(st.booleans(), "clone_max=abc"):
            env["OCF_RESKEY_CRM_meta_clone_max"] = "abc"
        stand_in = start_stand_in(comm, arguments(base))
        GUARD.allowed.add(stand_in.pid)
        GUARD.refused.clear()
        try:
            Path(base[pid_parameter]).parent.mkdir(parents=True, exist_ok=True)
            if data.draw(st.booleans(), "pid file written"):
                Path(base[pid_parameter]).write_text(f"{stand_in.pid}\n")
            ocf_action = "stop" if action == "stop" else "monitor"
            out, err = _Sink(), _Sink()
            code = main(
                AGENTS[name],
                [name, ocf_action],
                env,
                runner=FailingRunner(),
                clock=SystemClock(),
                stdout=out,
                stderr=err,
            )
            alive = stand_in.poll() is None
            event(f"{action} exit {code}, stand-in {'alive' if alive else 'gone'}")
            if action == "stop":
                assert code != 0 or not alive, f"stop said 0 while {comm} runs:\n{err.text}"
            else:
                assert not (code == 7 and alive), f"a probe said 7 while {comm} runs:\n{err.text}"
            assert not GUARD.refused, f"signalled processes it did not start: {GUARD.refused}"
        finally:
            GUARD.allowed.discard(stand_in.pid)
            if stand_in.poll() is None:
                os.kill(stand_in.pid, 9)
            stand_in.wait()


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass
