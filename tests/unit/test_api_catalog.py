"""A new API service is one record (stackha.services.api_catalog) and one declaration (its
agent): nothing else in the library, the agents, the templates or the package lists may name it.

Checked over the source tree: every string and number the code holds (comments and docstrings
are prose and may name anything), the templates' XML (not their comments), setup.cfg and the
lab's package lists. keystone is the identity service every other one depends on, and code
about Keystone's own API (tokens, users, the catalog) is keystone's by nature; its name may
appear, but not its port, paths or user.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path

import pytest
from lxml import etree
from stackha.lab import release
from stackha.services import api_catalog as catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "lib" / "stackha" / "services" / "api_catalog.py"


def declaration_files(service):
    """The files that may name ``service``: its agent's executable and its declaration."""
    module = service.name.replace("-", "_")
    return {
        ROOT / "agents" / service.name,
        ROOT / "lib" / "stackha" / "agents" / f"{module}.py",
    }


def python_sources():
    library = sorted((ROOT / "lib" / "stackha").rglob("*.py"))
    executables = [
        p for d in ("agents", "fence") for p in sorted((ROOT / d).iterdir()) if p.is_file()
    ]
    return [p for p in library + executables if p != CATALOG]


def docstring_nodes(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                yield body[0].value


def constants(path):
    """(line, value) of every string and integer constant of ``path``'s code."""
    tree = ast.parse(path.read_text(), str(path))
    prose = {id(node) for node in docstring_nodes(tree)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in prose:
            if isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
                yield node.lineno, node.value


def words(service):
    """What would name ``service``: its name, user, directories, databases and packages."""
    named = {service.config_dir, *service.lab.state_dirs}
    if service is not catalog.IDENTITY:  # keystone's user, database, package: its name
        named |= {service.name, service.user, *service.lab.databases}
        named |= set(service.lab.packages) | set(service.lab.units)
    return named


def pattern(service):
    alternatives = "|".join(re.escape(w) for w in sorted(words(service), key=len, reverse=True))
    # a whole word: "nova" is not in "novacompute", "/etc/nova" is in "/etc/nova/nova.conf"
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w])")


def naming(service, value):
    if isinstance(value, int):
        return value == service.port
    return bool(pattern(service).search(value)) or bool(
        re.search(rf"(?<!\d){service.port}(?!\d)", value)
    )


@pytest.mark.parametrize("service", catalog.SERVICES, ids=lambda s: s.name)
def test_only_its_record_and_declaration_name_a_service_in_the_code(service):
    allowed = declaration_files(service)
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in python_sources()
        if path not in allowed
        for line, value in constants(path)
        if naming(service, value)
    ]
    assert not found, f"{service.name} is named outside its record:\n" + "\n".join(found)


@pytest.mark.parametrize("service", catalog.SERVICES, ids=lambda s: s.name)
def test_no_template_names_a_service(service):
    found = []
    for path in sorted((ROOT / "crm-templates").glob("*.xml")):
        tree = etree.parse(str(path))
        for element in tree.iter(etree.Element):
            texts = [element.text or "", *element.attrib.values()]
            found += [f"{path.name}: {text!r}" for text in texts if naming(service, text)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("service", catalog.SERVICES, ids=lambda s: s.name)
def test_the_package_lists_take_a_services_packages_from_its_record(service):
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    for section in setup.sections():
        for key, value in setup[section].items():
            assert not naming(service, value) or service is catalog.IDENTITY, (section, key)
    for path in sorted(release.LISTS_DIR.glob("*.list")):
        sections = release.parse_list(path.read_text(), str(path))
        listed = {package for packages in sections.values() for package in packages}
        assert not listed & set(service.lab.packages), path.name
        stack = release.packages(path.stem, "stack", release.LISTS_DIR)
        assert set(service.lab.packages) <= set(stack), path.name


def test_this_test_finds_a_name_written_elsewhere(tmp_path):
    """The scan is not blind: the old hard-coded forms are found."""
    nova = catalog.NOVA_API
    source = tmp_path / "old.py"
    source.write_text(
        '"""nova-api in a docstring is prose."""\n'
        'SERVICES = ("haproxy", "nova-api")\n'
        "PORT = 8774\n"
        'DIRS = {"etc/nova": "/etc/nova"}\n'
        'URL = f"http://vip:8774/v2.1"\n'
    )
    found = sorted(line for line, value in constants(source) if naming(nova, value))
    assert found == [2, 3, 4, 4, 5]
    assert not naming(nova, "novacompute 187740 /etc/novas")


def test_names_are_unique_and_the_identity_starts_first():
    names = [service.name for service in catalog.SERVICES]
    assert len(set(names)) == len(names) == len(catalog.NAMES)
    assert catalog.SERVICES[0] is catalog.IDENTITY
    assert len({service.port for service in catalog.SERVICES}) == len(names)
    for service in catalog.SERVICES:
        assert catalog.service_named(service.name) is service
        assert service.uwsgi_ini.startswith(service.config_dir + "/")
        assert not service.validates_tokens or service.lab.authtoken
        assert service is catalog.IDENTITY or service.lab.catalog is not None


def test_a_missing_default_file_names_the_package_that_installs_it():
    from stackha.agents.api_service import ApiAgent
    from stackha.ocf.status import NotInstalled

    agent = ApiAgent(catalog.PLACEMENT_API)
    missing = agent.missing(
        "config file", "/etc/placement/placement.conf", catalog.PLACEMENT_API.config
    )
    assert isinstance(missing, NotInstalled) and missing.status == 5
    assert missing.reason == (
        "config file /etc/placement/placement.conf does not exist: is placement-api installed?"
    )
    # a path of the operator's own says only that it is missing
    assert agent.missing("config file", "/srv/p.conf", catalog.PLACEMENT_API.config).reason == (
        "config file /srv/p.conf does not exist"
    )
