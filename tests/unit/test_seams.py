"""Rules that keep the seams honest, checked over the source tree."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stackha import agents as ocf_agents
from stackha.fencing import agents as fence_agents
from stackha.install import agent_files, fence_agent_files
from stackha.ocf.docs import render_docs

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "lib" / "stackha").rglob("*.py"))
EXECUTABLES = [
    p
    for d in ("agents", "fence")
    if (ROOT / d).is_dir()
    for p in sorted((ROOT / d).iterdir())
    if p.is_file() and os.access(p, os.X_OK)
]


def tree(path):
    return ast.parse(path.read_text(), str(path))


def is_main_block(statement):
    return (
        isinstance(statement, ast.If)
        and isinstance(statement.test, ast.Compare)
        and isinstance(statement.test.left, ast.Name)
        and statement.test.left.id == "__name__"
    )


def imported_modules(path):
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def absolute_imports(path):
    """Every module ``path`` imports, by its full name: a relative import resolved against the
    package ``path`` is in, and ``from a import b`` also as ``a.b`` (``b`` may be a module)."""
    package = list(path.relative_to(ROOT / "lib").parent.parts)
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imports_of(path, module):
    return sorted(
        name for name in absolute_imports(path) if name == module or name.startswith(module + ".")
    )


SERVICES = sorted((ROOT / "lib" / "stackha" / "services").rglob("*.py"))
LAB = sorted((ROOT / "lib" / "stackha" / "lab").rglob("*.py"))


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: str(p.relative_to(ROOT)))
def test_services_know_nothing_of_ocf(path):
    """A workload module imports nothing from stackha.ocf: the OCF glue is in agents/."""
    assert imports_of(path, "stackha.ocf") == [], "keep OCF out of services/ (agents/ map errors)"


@pytest.mark.parametrize("path", LAB + SERVICES, ids=lambda p: str(p.relative_to(ROOT)))
def test_lab_and_services_raise_no_ocf_errors(path):
    """The lab and the workload modules raise their own errors, never OCF exit codes."""
    assert imports_of(path, "stackha.ocf.status") == [], "raise LabError, ProcessError or your own"


@pytest.mark.parametrize("path", LIBRARY + EXECUTABLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_runner_starts_programs(path):
    if path.name == "runner.py":
        return
    assert "subprocess" not in set(imported_modules(path)), "start programs through stackha.runner"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_code_never_exits(path):
    """Only an entry point's ``if __name__ == "__main__":`` block (and the CLI) may exit."""
    if path.name == "cli.py":
        return
    module = tree(path)
    module.body = [statement for statement in module.body if not is_main_block(statement)]
    for node in ast.walk(module):
        assert not (isinstance(node, ast.Attribute) and node.attr == "exit"), (
            f"line {node.lineno}: raise an error; main() exits"
        )
        assert not (isinstance(node, ast.Name) and node.id == "SystemExit"), (
            f"line {node.lineno}: raise an error; main() exits"
        )


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_code_never_reads_the_environment(path):
    if path.name == "cli.py":
        return
    for node in ast.walk(tree(path)):
        assert not (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")), (
            f"line {node.lineno}: read the environment once, in main()"
        )


@pytest.mark.parametrize("path", LIBRARY + EXECUTABLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell(path):
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.keyword) and node.arg == "shell":
            pytest.fail(f"shell= at line {node.value.lineno}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("system", "popen")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            pytest.fail(f"os.{node.attr} at line {node.lineno}")


PROBE = """
import runpy, sys, json, pkgutil  # pkgutil: runpy imports it (and typing) itself
sys.argv = [{agent!r}, "monitor"]
before = set(sys.modules)
try:
    runpy.run_path({agent!r}, run_name="__main__")
except SystemExit as exit:
    code = exit.code
added = sorted(set(sys.modules) - before)
print(json.dumps({{"code": code, "added": added}}))
"""
# What a monitor must not load: XML and device libraries, and the modules whose import alone
# costs more than the rest of a monitor call (see stackha.record).
HEAVY = ("lxml", "pyghmi", "pexpect", "xml", "typing", "dataclasses", "inspect")


@pytest.mark.parametrize(
    "agent", [p for p in EXECUTABLES if p.parent.name == "agents"], ids=lambda p: p.name
)
def test_the_monitor_path_imports_nothing_heavy(agent, tmp_path):
    """A monitor runs every few seconds for years: nothing in HEAVY is imported for it."""
    env = {
        "PATH": "/usr/bin:/bin",
        "OCF_ROOT": "/usr/lib/ocf",
        "OCF_RESOURCE_INSTANCE": "probe",
        "OCF_RESKEY_CRM_meta_interval": "0",
        "PYTHONPATH": str(ROOT / "lib"),
    }
    # Point every path-like parameter somewhere empty, so the probe finds nothing running.
    for parameter in ocf_agents.declaration(agent.name).spec.parameters:
        if parameter.type == "string" and str(parameter.default or "").startswith("/"):
            env[f"OCF_RESKEY_{parameter.name}"] = str(tmp_path / parameter.name)
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(agent=str(agent))],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 7, result.stderr
    heavy = [m for m in report["added"] if m.split(".")[0] in HEAVY]
    assert heavy == []
    assert "stackha.services.haproxy" in report["added"] or agent.name != "haproxy"


@pytest.mark.parametrize("agent", sorted(ocf_agents.MODULES))
def test_docs_page_is_generated_from_the_declaration(agent):
    """docs/agents/NAME.md is what `stackha docs docs/agents` writes: run it after a change."""
    spec = ocf_agents.declaration(agent).spec
    page = ROOT / "docs" / "agents" / f"{spec.name}.md"
    assert page.exists() and page.read_text() == render_docs(spec)


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("*.py")), ids=lambda p: p.name)
def test_tests_never_import_a_conftest(path):
    """All tiers run in one pytest session, where "conftest" names several modules."""
    assert "conftest" not in set(imported_modules(path)), "put shared helpers in a named module"


@pytest.mark.parametrize("agent", sorted(ocf_agents.MODULES))
def test_every_agent_with_a_stop_can_find_what_runs_without_its_configuration(agent):
    """Issue 15: stop and a probe never answer "nothing runs" because a parameter is bad;
    the framework asks the agent's leftovers (stackha.ocf.agent) — so every agent that stops
    something declares them, present and future."""
    declared = ocf_agents.declaration(agent)
    if "stop" in declared.handlers:
        assert declared.leftovers is not None


GLUE = sorted((ROOT / "lib" / "stackha" / "agents").glob("*.py")) + sorted(
    (ROOT / "lib" / "stackha" / "fencing" / "agents").glob("*.py")
)


@pytest.mark.parametrize("path", GLUE, ids=lambda p: str(p.relative_to(ROOT)))
def test_agent_glue_runs_no_program_itself(path):
    """What each workload's programs are asked, and how, is in stackha.services (one typed
    function per verb, tested with the fake runner): an agent hands them its runner."""
    for node in ast.walk(tree(path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("run", "spawn")
            and isinstance(node.func.value, ast.Attribute)
            and node.func.value.attr == "runner"
        ):
            pytest.fail(f"line {node.lineno}: call a stackha.services function with the runner")


# -- the executables: what Pacemaker runs, and nothing else --------------------------------

REGISTRIES = {"agents": ocf_agents.MODULES, "fence": fence_agents.MODULES}
MAIN_ARGUMENTS = {"agents": "os.environ", "fence": "sys.stdin"}


def test_every_registered_agent_has_its_executable_and_no_executable_is_unregistered():
    """The registries (stackha.agents.MODULES, stackha.fencing.agents.MODULES) are the one list
    of stackha's agents: the renderer, the docs and the tests read it, install copies the files."""
    assert sorted(ocf_agents.MODULES) == [p.name for p in agent_files()]
    assert sorted(fence_agents.MODULES) == [p.name for p in fence_agent_files()]


@pytest.mark.parametrize("path", EXECUTABLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_executable_is_its_registered_declaration_and_main_alone(path):
    """An executable in agents/ or fence/ imports its declaration from the module the registry
    names and runs main: no definition, no statement of its own, so no handler can drift back
    out of the library (where it is imported, typed and tested like any module)."""
    module = tree(path)
    body = module.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring: what Pacemaker runs, and where its code is
    *imports, last = body
    assert all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in imports), (
        "only imports before the main block: declare and handle in the library"
    )
    declaration = REGISTRIES[path.parent.name][path.name]
    assert any(
        isinstance(s, ast.ImportFrom)
        and s.module == declaration
        and [a.name for a in s.names] == ["AGENT"]
        for s in imports
    ), f"import AGENT from {declaration}"
    assert is_main_block(last)
    argument = MAIN_ARGUMENTS[path.parent.name]
    assert [ast.unparse(s) for s in last.body] == [
        f"raise SystemExit(main(AGENT, sys.argv, {argument}))"
    ]
    assert last.orelse == []


CHEAP_IMPORT = """
import importlib, json, sys
before = set(sys.modules)
importlib.import_module({module!r})
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize(
    "module",
    ["stackha.agents", "stackha.fencing.agents"]
    + sorted({*ocf_agents.MODULES.values(), *fence_agents.MODULES.values()}),
)
def test_importing_an_agent_loads_nothing_heavy_and_no_other_agent(module):
    """An agent's module is imported on every call of it (a monitor every few seconds): it
    loads neither XML, device, HTTP or TLS libraries (its handlers import them when a call
    needs them) nor any other agent's module (the packages' __init__ import none)."""
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT / 'lib')!r})\n"
            + CHEAP_IMPORT.format(module=module),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    added = json.loads(result.stdout or "null")
    assert added is not None, result.stderr
    heavy = [m for m in added if m.split(".")[0] in (*HEAVY, "urllib", "http", "ssl", "email")]
    assert heavy == []
    declarations = {*ocf_agents.MODULES.values(), *fence_agents.MODULES.values()}
    assert [m for m in added if m in declarations and m != module] == []
