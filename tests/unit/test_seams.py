"""Rules that keep the seams honest, checked over the source tree."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stackha.install import agent_files, load_agent_module
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
    module = load_agent_module(agent)
    for parameter in module.AGENT.spec.parameters:
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


@pytest.mark.parametrize("agent", agent_files(), ids=lambda p: p.name)
def test_docs_page_is_generated_from_the_declaration(agent):
    """docs/agents/NAME.md is what `stackha docs docs/agents` writes: run it after a change."""
    spec = load_agent_module(agent).AGENT.spec
    page = ROOT / "docs" / "agents" / f"{spec.name}.md"
    assert page.exists() and page.read_text() == render_docs(spec)


@pytest.mark.parametrize("path", sorted((ROOT / "tests").rglob("*.py")), ids=lambda p: p.name)
def test_tests_never_import_a_conftest(path):
    """All tiers run in one pytest session, where "conftest" names several modules."""
    assert "conftest" not in set(imported_modules(path)), "put shared helpers in a named module"


@pytest.mark.parametrize("agent", agent_files(), ids=lambda p: p.name)
def test_every_agent_with_a_stop_can_find_what_runs_without_its_configuration(agent):
    """Issue 15: stop and a probe never answer "nothing runs" because a parameter is bad;
    the framework asks the agent's leftovers (stackha.ocf.agent) — so every agent that stops
    something declares them, present and future."""
    module = load_agent_module(agent)
    if "stop" in module.AGENT.handlers:
        assert module.AGENT.leftovers is not None
