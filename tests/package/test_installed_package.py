"""stackha's Debian package installed with apt into a fresh minimal root filesystem of each
release the lab supports, Debian 12 and 13, whatever the host runs (mmdebstrap, the machine's own
mirror), and checked there from the installed files only:
apt takes every Depends from the distribution, each agent's meta-data validates, ocf-tester
passes on the haproxy agent, pcs and stonith_admin read every agent, fence_stackha_ipmi talks to
an IPMI simulator on the host's loopback, the versions agree, and ``apt-get purge`` leaves no
file of the package behind (issues 16 and 17)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from agent_runs import command_lines_watched_for, free_port
from haproxy_sandbox import agent_parameters, loopback_config
from ipmi_sim import agent_options, running_ipmi_sim
from lxml import etree
from ocf_checks import XMLLINT_VALID, assert_valid_ocf_1_1
from stackha.agents import declaration
from stackha.fencing.agents import declaration as fence_declaration
from stackha.install import agent_files, fence_agent_files
from stackha.lab.release import RELEASES
from stackha.lab.rootfs import TreeCache, scratch_root
from stackha.runner import SubprocessRunner
from tree_warmup import CHECK_PACKAGES

pytestmark = pytest.mark.root

DEPENDS = ("python3-lxml", "python3-pexpect", "python3-pyghmi")
OCF_DIR = "/usr/lib/ocf/resource.d/stackha"
DATADIR = "/usr/share/resource-agents"
INTERPRETER = "#!/usr/bin/python3 -IS"
AGENTS = sorted(p.name for p in agent_files())
FENCE_AGENTS = sorted(p.name for p in fence_agent_files())
# Where the tests put their own files in a tree (left out of the purge's comparison).
TEST_DIR = "/srv/stackha-test"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
PACEMAKER_ENV = {"OCF_RA_VERSION_MAJOR": "1", "OCF_RA_VERSION_MINOR": "1"}
# Mount points of a scratch root, and state apt, dpkg and ldconfig keep for themselves.
NOT_LISTED = ("/proc", "/sys", "/dev", "/run", "/tmp")
PACKAGE_MANAGER_STATE = (
    "/var/lib/dpkg/",
    "/var/lib/apt/",
    "/var/cache/apt/",
    "/var/cache/debconf/",
    "/var/cache/ldconfig/",
    "/var/log/",
    "/etc/ld.so.cache",
    TEST_DIR,
)
# How long each step took, printed at the end of the module (pytest -s).
TIMINGS: dict[str, float] = {}


def timed(what, function, *args, **kwargs):
    started = time.monotonic()
    try:
        return function(*args, **kwargs)
    finally:
        TIMINGS[what] = TIMINGS.get(what, 0.0) + time.monotonic() - started


def spec_of(agent_name):
    return declaration(agent_name).spec


def fence_spec_of(name):
    return fence_declaration(name).spec


def file_listing(top: Path) -> set[str]:
    """Every path in the tree at ``top`` (as seen inside it), scratch mount points left out."""
    paths = set()
    for directory, subdirectories, files in os.walk(top):
        inside = "/" + os.path.relpath(directory, top) if directory != str(top) else ""
        if not inside:
            subdirectories[:] = [d for d in subdirectories if f"/{d}" not in NOT_LISTED]
        paths.update(f"{inside}/{name}" for name in [*subdirectories, *files])
    return paths


def package_states(root, names):
    """{package: installed or not} as dpkg says inside ``root``."""
    result = root.run(
        ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *names], timeout=60
    )
    found = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    return {name: found.get(name) == "installed" for name in names}


def install(root, deb, tree):
    """apt-get install of the .deb inside ``root``, a copy of ``tree`` (the tree's apt lists
    are fetched first: mmdebstrap leaves none); the finished apt-get install."""
    (root.path / TEST_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    inside = f"{TEST_DIR}/{deb.name}"
    (root.path / inside.lstrip("/")).write_bytes(deb.read_bytes())
    update = timed(
        f"apt-get update ({tree})", root.run, ["apt-get", "update"], timeout=600, env=APT_ENV
    )
    assert update.ok, update.stdout + update.stderr
    return timed(
        f"apt-get install stackha.deb ({tree})",
        root.run,
        ["apt-get", "install", "-y", inside],
        timeout=600,
        env=APT_ENV,
    )


@pytest.fixture(scope="module")
def runner():
    if os.geteuid() != 0:
        pytest.skip("needs root (mmdebstrap, mounts, chroot)")
    return SubprocessRunner()


@pytest.fixture(scope="module", autouse=True)
def timings():
    yield
    for what, seconds in TIMINGS.items():
        print(f"package tier: {what}: {seconds:.1f}s")


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(request):
    return request.param


@pytest.fixture(scope="module")
def tools_tree(runner, release):
    """The release with what the checks run (built once, then cached)."""
    return timed(
        f"{release} tree with the tools (build or cache)",
        TreeCache(runner).tree,
        CHECK_PACKAGES,
        suite=release,
    )


@pytest.fixture(scope="module")
def installed(runner, tools_tree, stackha_deb):
    """A throw-away copy of the tools tree with stackha installed by apt; the tree's file
    listing before the install, the package states before, and apt's output."""
    with scratch_root(runner, tools_tree) as root:
        before = timed("file listing", file_listing, root.path)
        states = package_states(root, DEPENDS)
        result = install(root, stackha_deb, "tools tree")
        assert result.ok, result.stdout + result.stderr
        yield {"root": root, "before": before, "states": states, "apt": result}


@pytest.fixture(scope="module")
def root(installed):
    return installed["root"]


@pytest.fixture(scope="module")
def version(root):
    result = root.run(["dpkg-query", "-W", "-f", "${Version}", "stackha"], timeout=60)
    assert result.ok and result.stdout, result.stderr
    return result.stdout


def metadata(root, agent, **env):
    result = root.run([f"{OCF_DIR}/{agent}", "meta-data"], timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_apt_takes_every_depends_from_the_distribution(installed):
    """pyghmi and pexpect were not in the tree and came from the mirror with the package;
    no pip, nothing in /usr/local; the library is the one in the system's dist-packages."""
    root = installed["root"]
    assert installed["states"]["python3-pyghmi"] is False
    assert installed["states"]["python3-pexpect"] is False
    assert package_states(root, DEPENDS) == dict.fromkeys(DEPENDS, True)
    fetched = installed["apt"].stdout
    for package in ("python3-pyghmi", "python3-pexpect"):
        assert re.search(rf"^Get:\d+ \S+ \S+ \S+ {package} ", fetched, re.M), fetched
    assert package_states(root, ["python3-pip"]) == {"python3-pip": False}
    assert not list((root.path / "usr/local/lib").glob("python3*/dist-packages/*"))
    where = root.run(["python3", "-I", "-c", "import stackha; print(stackha.__file__)"], timeout=60)
    assert where.stdout.strip() == "/usr/lib/python3/dist-packages/stackha/__init__.py"


def test_the_ocf_directory_holds_every_agent_and_nothing_else(root):
    assert sorted(os.listdir(root.path / OCF_DIR.lstrip("/"))) == AGENTS


@pytest.mark.parametrize(
    "path",
    [f"{OCF_DIR}/{a}" for a in AGENTS] + [f"/usr/sbin/{f}" for f in FENCE_AGENTS],
)
def test_every_agent_runs_the_system_python_isolated(root, path):
    """#!/usr/bin/python3 -IS: the distribution's Python, no PYTHONPATH or user site, no site.py
    (debian/install-python-program)."""
    first = (root.path / path.lstrip("/")).read_text().splitlines()[0]
    assert first == INTERPRETER


@pytest.mark.parametrize("agent", AGENTS)
def test_metadata_is_valid_ocf_1_1(root, agent):
    """As Pacemaker asks for it: the OCF 1.1 schema and the tree's resource-agents lint
    schema, as the contract tier checks it."""
    text = timed("meta-data validation", metadata, root, agent, **PACEMAKER_ENV)
    assert_valid_ocf_1_1(text, datadir=str(root.path / DATADIR.lstrip("/")))


@pytest.mark.parametrize("agent", AGENTS)
def test_metadata_for_callers_that_say_no_version_is_dtd_valid(root, agent):
    """What ocf-tester does: the tree's xmllint against the tree's ra-api-1.dtd."""
    text = metadata(root, agent)
    result = timed(
        "meta-data validation",
        root.run,
        ["env", f"--chdir={DATADIR}", *XMLLINT_VALID],
        stdin=text,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_ocf_tester_passes_on_the_haproxy_agent(root):
    """The contract tier's haproxy sandbox, in the tree: ocf-tester starts, monitors and stops
    a real HAProxy with the installed agent."""
    directory = f"{TEST_DIR}/haproxy"
    (root.path / directory.lstrip("/")).mkdir(parents=True)
    (root.path / directory.lstrip("/") / "haproxy.cfg").write_text(
        loopback_config(directory, free_port())
    )
    options = [
        arg
        for key, value in agent_parameters(directory).items()
        for arg in ("-o", f"{key}={value}")
    ]
    result = timed(
        "ocf-tester on haproxy",
        root.run,
        ["ocf-tester", "-n", "contract-haproxy", *options, f"{OCF_DIR}/haproxy"],
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed all tests" in result.stdout


@pytest.mark.parametrize("agent", AGENTS)
def test_pcs_describes_every_agent(root, agent):
    result = timed(
        "pcs resource describe",
        root.run,
        ["pcs", "resource", "describe", f"ocf:stackha:{agent}"],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for parameter in spec_of(agent).parameters:
        # pcs 0.11: "  name (required): description"; pcs 0.12: "  name (required)", then
        # "Description:" on the next line (docs/debian13.md)
        assert re.search(rf"^  {parameter.name}( \(.*\))?(: |$)", result.stdout, re.M), (
            parameter.name
        )
    assert "Error" not in result.stderr


@pytest.mark.parametrize("name", FENCE_AGENTS)
def test_stonith_admin_reads_every_fence_agent(root, name):
    result = timed(
        "stonith_admin --metadata",
        root.run,
        ["stonith_admin", "--metadata", "--agent", name],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    document = etree.fromstring(result.stdout.encode())
    assert document.get("name") == name
    names = {p.get("name") for p in document.iter("parameter")}
    assert {o.name for o in fence_spec_of(name).options} <= names


def test_fence_ipmi_status_against_an_ipmi_simulator(root, tmp_path):
    """fence_stackha_ipmi in the tree reaches ipmi_sim on the host's 127.0.0.1: the options on
    stdin as fenced passes them, and ``-o status`` with the password from a password script;
    the password is on no command line meanwhile."""
    with running_ipmi_sim(tmp_path) as sim:
        script = f"{TEST_DIR}/ipmi-password"
        (root.path / TEST_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        secret = root.path / f"{script}.txt".lstrip("/")
        secret.write_text(sim["password"] + "\n")
        secret.chmod(0o600)
        (root.path / script.lstrip("/")).write_text(f"#!/bin/sh\nexec cat {script}.txt\n")
        (root.path / script.lstrip("/")).chmod(0o700)
        with command_lines_watched_for(sim["password"]) as seen:
            on_stdin = timed(
                "fence_stackha_ipmi status",
                root.run,
                ["/usr/sbin/fence_stackha_ipmi"],
                stdin=agent_options(sim, "status"),
                timeout=60,
            )
            with_argv = root.run(
                [
                    "/usr/sbin/fence_stackha_ipmi",
                    "-o",
                    "status",
                    "-a",
                    "127.0.0.1",
                    "-u",
                    str(sim["port"]),
                    "-l",
                    "admin",
                    "-S",
                    script,
                ],
                timeout=60,
            )
    assert (on_stdin.returncode, on_stdin.stdout) == (0, "Status: ON\n"), on_stdin.stderr
    assert (with_argv.returncode, with_argv.stdout) == (0, "Status: ON\n"), with_argv.stderr
    assert seen == []


def test_every_version_is_the_packages(root, version):
    """stackha --version, dpkg's version of the package and every agent's meta-data agree."""
    result = root.run(["stackha", "--version"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"stackha {version}"
    for agent in AGENTS:
        document = etree.fromstring(metadata(root, agent).encode())
        assert document.get("version") == version, agent


@pytest.fixture(scope="module")
def bare_tree(runner, release):
    """The release with apt alone: no Pacemaker, no python3-lxml."""
    return timed(f"{release} bare tree (build or cache)", TreeCache(runner).tree, (), suite=release)


def test_status_without_pacemaker_is_one_line_naming_what_is_missing(
    runner, bare_tree, stackha_deb
):
    """Where Pacemaker is not installed (only recommended, so apt leaves it out), every
    Depends comes with the package, and ``stackha status`` says in one line what is missing:
    a non-zero exit, no traceback."""
    with scratch_root(runner, bare_tree) as root:
        assert package_states(root, DEPENDS) == dict.fromkeys(DEPENDS, False)
        result = install(root, stackha_deb, "bare tree")
        assert result.ok, result.stdout + result.stderr
        assert package_states(root, DEPENDS) == dict.fromkeys(DEPENDS, True)
        assert package_states(root, ["pacemaker", "pacemaker-cli-utils"]) == {
            "pacemaker": False,
            "pacemaker-cli-utils": False,
        }
        status = root.run(["stackha", "status"], timeout=60)
    output = (status.stdout + status.stderr).strip()
    assert status.returncode != 0, output
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert re.search(r"crm_mon|pacemaker", output, re.I), output


def python_ran(root):
    """Run the package's Python the ways a node does, so caches it writes at run time exist."""
    for argv in (
        ["stackha", "--version"],
        [f"{OCF_DIR}/haproxy", "meta-data"],
        ["/usr/sbin/fence_stackha_ipmi", "-o", "metadata"],
    ):
        assert root.run(argv, timeout=60).returncode == 0, argv


def test_purge_leaves_no_file_of_the_package(installed, root):
    """After apt-get purge: no path dpkg listed for the package remains (but directories
    other packages share), and nothing new is left under the package's directories or named
    for it — caches Python wrote at run time included. Runs last: it removes the package."""
    python_ran(root)
    listed = root.run(["dpkg", "-L", "stackha"], timeout=60)
    assert listed.ok, listed.stderr
    files = [line for line in listed.stdout.splitlines() if line.startswith("/") and line != "/."]
    purge = timed(
        "apt-get purge", root.run, ["apt-get", "purge", "-y", "stackha"], timeout=600, env=APT_ENV
    )
    assert purge.ok, purge.stdout + purge.stderr
    after = file_listing(root.path)
    owned = set()
    for listing in (root.path / "var/lib/dpkg/info").glob("*.list"):
        owned.update(listing.read_text().splitlines())
    left = [
        path
        for path in files
        if os.path.lexists(root.path / path.lstrip("/"))
        and not (os.path.isdir(root.path / path.lstrip("/")) and path in owned)
        and path not in installed["before"]
    ]
    new = sorted(
        path
        for path in after - installed["before"]
        if path not in owned and not path.startswith(PACKAGE_MANAGER_STATE)
    )
    package_dirs = (
        "/usr/lib/python3/dist-packages/stackha",
        OCF_DIR,
        "/usr/share/stackha",
        "/usr/share/doc/stackha",
    )
    ours = [
        path
        for path in new
        if "stackha" in path
        or path.startswith(package_dirs)
        # a cache beside Python files no installed package owns any more
        or (
            "__pycache__" in path
            and path.split("/__pycache__", 1)[0] not in owned
            and path.split("/__pycache__", 1)[0] not in installed["before"]
        )
    ]
    assert left == [], f"dpkg -L paths left after purge: {left}"
    assert ours == [], f"new paths of the package left after purge: {ours} (all new: {new})"
