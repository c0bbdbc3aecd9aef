"""What the Debian packaging reads from the tree: one version, man pages from declarations,
the lab split off into stackha-lab, and stackha install keeping away from the package's files."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from stackha import __version__
from stackha.agents import MODULES, declaration
from stackha.command_pages import command_page
from stackha.fencing.agents import ipmi
from stackha.install import InstallError, install
from stackha.manpage import Page, escape, render

ROOT = Path(__file__).resolve().parents[2]
DEBIAN = ROOT / "debian"


def test_the_package_version_is_the_library_version():
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    match = re.match(r"stackha \(([^)]+)\) ", first)
    assert match, first
    assert match.group(1) == __version__  # a native package: no Debian revision


def test_every_agent_declares_the_library_version():
    for name in MODULES:
        assert declaration(name).spec.version == __version__, name


def test_every_library_subpackage_goes_to_exactly_one_binary_package():
    install_files = {
        package: (DEBIAN / f"{package}.install").read_text().split()
        for package in ("stackha", "stackha-lab")
    }
    prefix = "usr/lib/python3*/dist-packages/stackha/"
    claimed = {
        entry[len(prefix) :]: package
        for package, entries in install_files.items()
        for entry in entries
        if entry.startswith(prefix)
    }
    library = ROOT / "lib" / "stackha"
    subpackages = sorted(p.name for p in library.iterdir() if (p / "__init__.py").exists())
    assert sorted(name for name in claimed if "*" not in name and "." not in name) == subpackages
    assert claimed["lab"] == "stackha-lab"
    assert claimed["*.py"] == "stackha" and claimed["py.typed"] == "stackha"


def test_escape_keeps_roff_from_reading_text_as_requests():
    assert escape("a-b") == "a\\-b"
    assert escape("C:\\path") == "C:\\epath"
    assert escape("x\n.SH not a heading\n'also not") == "x\n\\&.SH not a heading\n\\&'also not"


def test_render_writes_name_synopsis_and_sections():
    page = Page(
        "tool",
        8,
        "does things",
        "tool [OPTION]...",
        ["First.", "Second."],
        [
            ("Options", [("-a, --ip=IP", "The address.")]),
            ("Example", [("", "tool -a 10.0.0.1")]),
        ],
    )
    text = render(page, "9.9")
    assert text.startswith('.TH "TOOL" "8" "" "stackha 9.9" "stackha manual"\n')
    assert ".SH NAME\ntool \\- does things\n" in text
    assert "First.\n.PP\nSecond.\n" in text
    assert ".TP\n.B \\-a, \\-\\-ip=IP\nThe address.\n" in text
    assert ".SH EXAMPLE\n.PP\ntool \\-a 10.0.0.1\n" in text


def test_the_stackha_page_lists_every_command():
    from stackha.cli import _parser

    text = render(command_page("stackha"), __version__)
    commands = next(a for a in _parser()._actions if a.dest == "command").choices
    for command in commands:
        assert f".B stackha {command}" in text.replace("\\-", "-"), command


def test_a_fence_agent_page_has_every_option_and_action(tmp_path):
    agent = ROOT / "fence" / "fence_stackha_ipmi"
    result = subprocess.run(
        [sys.executable, str(agent), "-o", "manpage"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "lib")},  # as debian/rules runs it
    )
    spec = ipmi.AGENT.spec
    text = result.stdout.replace("\\-", "-")
    assert text.startswith('.TH "FENCE_STACKHA_IPMI" "8"')
    for option in spec.options:
        assert f".B {option.short + ', ' if option.short else ''}{option.long}" in text
    for action in spec.actions:
        assert f".TP\n.B {action}\n" in text
    assert result.stderr == ""


def test_install_refuses_to_overwrite_the_package_files(tmp_path):
    provider = tmp_path / "resource.d" / "stackha"
    listing = tmp_path / "stackha.list"
    listing.write_text(f"/.\n{provider}\n{provider / 'haproxy'}\n")
    (tmp_path / "sbin").mkdir()
    with pytest.raises(InstallError, match=r"haproxy belongs to the Debian package stackha"):
        install(str(tmp_path), str(tmp_path / "sbin"), package_list=str(listing))
    assert not provider.exists()  # refused before writing anything


def test_stackha_lab_without_the_lab_package_says_where_it_is(tmp_path):
    # The library without stackha/lab, as the package stackha installs it.
    library = tmp_path / "stackha"
    subprocess.run(["cp", "-r", str(ROOT / "lib" / "stackha"), str(library)], check=True)
    subprocess.run(["rm", "-r", str(library / "lab")], check=True)
    command = [
        sys.executable,
        "-I",
        "-c",
        "import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]; "
        "from stackha.cli import main; sys.exit(main())",
        str(tmp_path),
    ]
    result = subprocess.run([*command, "lab", "up"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == (
        "stackha lab: error: the lab is in the stackha-lab package: apt install stackha-lab\n"
    )
    assert subprocess.run([*command, "--help"], capture_output=True, text=True).returncode == 0


class NothingInstalled:
    """A node without Pacemaker (or anything else): every program is missing."""

    def run(self, argv, **kwargs):
        from stackha.runner import CommandNotFound

        raise CommandNotFound(f"{argv[0]}: not found")

    def spawn(self, spec):
        from stackha.runner import CommandNotFound

        raise CommandNotFound(f"{spec.argv[0]}: not found")


@pytest.mark.parametrize("verb", ["check", "apply"])
def test_cib_commands_without_pacemaker_name_what_is_missing(tmp_path, capsys, verb):
    from stackha.cli import main

    cib = tmp_path / "cib.xml"
    site = ROOT / "crm-templates" / "site.example.ini"
    assert main(["cib", "render", str(site), "--output", str(cib)]) == 0
    capsys.readouterr()
    assert main(["cib", verb, str(cib)], runner=NothingInstalled()) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(
        rf"stackha cib {verb}: error: /usr/sbin/crm_\w+: not found "
        r"\(apt install pacemaker-cli-utils\)\n",
        err,
    ), err


def test_status_without_pacemaker_names_what_is_missing(capsys):
    from stackha.cli import main

    assert main(["status"], runner=NothingInstalled()) == 1
    err = capsys.readouterr().err
    assert err == "stackha status: error: /usr/sbin/crm_mon: not found: is Pacemaker installed?\n"
