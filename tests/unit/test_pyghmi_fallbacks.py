"""What stackha does when pyghmi is missing, too old, or does not fit what it reaches inside it.

Stand-in pyghmi packages, written for each test, sit first on the path of a fresh interpreter:
the import machinery is real, pyghmi is the fake. tests/package runs the real releases.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

from fake_devices import FakePowerDevice
from stackha.fencing.agent import FenceAgent, main
from stackha.fencing.agents import ipmi as IPMI
from stackha.fencing.ipmi import MINIMUM_PYGHMI, _wait_in_short_slices, lacking

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"
AGENT = ROOT / "fence" / "fence_stackha_ipmi"
OPTIONS = "ip=127.0.0.1\nipport=9\nusername=admin\npassword=s3cret\naction=status\n"

FITTING_SESSION = """
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
import pyghmi.exceptions as exc

class Session:
    _crypto_backend = default_backend()

    def __init__(self, bmc, userid, password, port=623, kg=None, onlogon=None,
                 privlevel=None, keepalive=True):
        raise exc.IpmiException("Unauthorized name")  # a final answer: not asked again

    def raw_command(self, netfn, command, bridge_request=None, data=(), retry=True):
        pass

    def logout(self, sessionok=True):
        pass

def _io_wait(timeout, myaddr=None, evq=None):
    pass
"""


def stand_in(tmp_path: Path, version: str, files: dict[str, str]) -> Path:
    """A pyghmi package of ``version`` in ``tmp_path``: ``files`` over an empty skeleton."""
    skeleton = {
        "pyghmi/__init__.py": "",
        "pyghmi/exceptions.py": "class IpmiException(Exception):\n    pass\n",
        "pyghmi/ipmi/__init__.py": "",
        "pyghmi/ipmi/private/__init__.py": "",
        f"pyghmi-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: pyghmi\nVersion: {version}\n"
        ),
    }
    for name, text in {**skeleton, **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def python(
    script: str, path: list[Path], *flags: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    """``script`` in a fresh interpreter whose path starts with ``path`` (then the virtualenv's,
    whose pyghmi and cryptography are real, unless a flag such as -S leaves them out)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C",
        "PYTHONPATH": os.pathsep.join(str(p) for p in path),
    }
    return subprocess.run(
        [sys.executable, *flags, *(["-c", script] if script else [str(AGENT)])],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


SESSION_REPORT = """
import json, sys
from stackha.fencing import openssl_aes
{setup}
session, note = openssl_aes.session_module()
util = sys.modules.get("pyghmi.ipmi.private.util")
print(json.dumps({{
    "note": note,
    "shortcut": session.Cipher is openssl_aes.Cipher,
    "util_backend": getattr(getattr(util, "default_backend", None), "__module__", None),
    "shims_left": [m for m in sys.modules if m.startswith("cryptography")
                   and getattr(sys.modules[m], "__file__", None) is None],
}}))
"""


def session_report(path: list[Path], setup: str = "") -> dict:
    result = python(SESSION_REPORT.format(setup=setup), [*path, LIB])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_pyghmi_that_fits_gets_aes_from_libcrypto_and_no_note(tmp_path):
    """The stand-in binds pyghmi's four names: libcrypto's cipher, nothing to say."""
    pyghmi = stand_in(tmp_path, "1.5.34", {"pyghmi/ipmi/private/session.py": FITTING_SESSION})
    report = session_report([pyghmi])
    assert (report["note"], report["shortcut"], report["shims_left"]) == (None, True, [])


def test_a_pyghmi_importing_a_name_the_stand_in_lacks_gets_the_real_package_and_a_note(tmp_path):
    """A release that imports more of cryptography than the stand-in offers: pyghmi as shipped,
    its half-imported modules imported afresh (none keeps a stand-in name), and the reason."""
    pyghmi = stand_in(
        tmp_path,
        "1.7.0",
        {
            # Imported before the failure, binding a stand-in name.
            "pyghmi/ipmi/private/util.py": (
                "from cryptography.hazmat.backends import default_backend\n"
            ),
            "pyghmi/ipmi/private/session.py": (
                "from pyghmi.ipmi.private import util\n"
                "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n" + FITTING_SESSION
            ),
        },
    )
    report = session_report([pyghmi])
    assert report["note"] == (
        "AES through the cryptography package (the libcrypto shortcut does not fit: "
        "ModuleNotFoundError: No module named 'cryptography.hazmat.primitives.ciphers.aead')"
    )
    assert report["shortcut"] is False
    assert report["util_backend"].startswith("cryptography.hazmat.backends")
    assert report["shims_left"] == []


def test_a_pyghmi_calling_the_stand_in_differently_gets_the_real_package_and_a_note(tmp_path):
    """A name the stand-in's objects lack, used as pyghmi's module is run (cryptography's
    algorithms.AES128, 37.0 and later): fallback."""
    session = FITTING_SESSION + "AES_128 = algorithms.AES128\n"
    pyghmi = stand_in(tmp_path, "1.7.0", {"pyghmi/ipmi/private/session.py": session})
    report = session_report([pyghmi])
    assert report["note"] == (
        "AES through the cryptography package (the libcrypto shortcut does not fit: "
        "AttributeError: 'types.SimpleNamespace' object has no attribute 'AES128')"
    )
    assert report["shortcut"] is False


def test_without_libcrypto_pyghmi_gets_the_real_package_and_a_note(tmp_path):
    """libcrypto.so.3 does not load (no OpenSSL 3): pyghmi as shipped, and why."""
    pyghmi = stand_in(tmp_path, "1.5.34", {"pyghmi/ipmi/private/session.py": FITTING_SESSION})
    report = session_report([pyghmi], setup="openssl_aes.LIBCRYPTO = 'libcrypto.so.absent'")
    assert report["note"].startswith(
        "AES through the cryptography package (libcrypto.so.absent does not load: "
    )
    assert report["shortcut"] is False


def agent_run(path: list[Path], *flags: str) -> subprocess.CompletedProcess:
    return python("", [*path, LIB], *flags, stdin=OPTIONS)


def assert_one_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert (result.returncode, result.stdout, result.stderr) == (1, "", f"ERROR: {message}\n")


def test_the_fence_agent_without_pyghmi_says_so_in_one_line():
    """No pyghmi at all (-S: not even the virtualenv's): exit 1, one line saying what to
    install, no traceback."""
    assert_one_error(agent_run([], "-S"), "pyghmi is not installed (apt install python3-pyghmi)")


def test_the_fence_agent_with_a_pyghmi_too_old_names_what_it_lacks(tmp_path):
    """pyghmi 1.3.0's Session takes no keepalive argument: exit 1, one line naming it and the
    release stackha is proven with."""
    session = FITTING_SESSION.replace("privlevel=None, keepalive=True", "privlevel=4")
    pyghmi = stand_in(tmp_path, "1.3.0", {"pyghmi/ipmi/private/session.py": session})
    assert_one_error(
        agent_run([pyghmi]),
        f"pyghmi 1.3.0 lacks Session(keepalive=...); stackha needs pyghmi >= {MINIMUM_PYGHMI}",
    )


def test_the_fence_agent_with_a_pyghmi_missing_a_module_names_the_module(tmp_path):
    """pyghmi before 1.1 encrypted with pycrypto (``Crypto``): exit 1, one line naming the
    module that is not installed."""
    pyghmi = stand_in(
        tmp_path,
        "1.0.22",
        {"pyghmi/ipmi/private/session.py": "from Crypto.Cipher import AES\n" + FITTING_SESSION},
    )
    assert_one_error(
        agent_run([pyghmi], "-S"),
        "pyghmi 1.0.22 needs the Python module Crypto, which is not installed",
    )


def test_the_fence_agent_logs_the_fallback_once_and_goes_on(tmp_path):
    """A pyghmi the stand-in does not fit: the agent's log says so in one WARNING line, and the
    call goes on (here to the stand-in session's refusal of the user)."""
    session = "from cryptography.hazmat.primitives import padding\n" + FITTING_SESSION
    pyghmi = stand_in(tmp_path, "1.7.0", {"pyghmi/ipmi/private/session.py": session})
    result = agent_run([pyghmi])
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "WARNING: pyghmi 1.7.0: AES through the cryptography package (the libcrypto shortcut "
        "does not fit: ImportError: cannot import name 'padding'"
    )
    assert [line for line in lines if "AES" in line] == lines[:1]
    assert lines[1:] == ["ERROR: login to BMC 127.0.0.1:9 failed: Unauthorized name"]
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


def test_lacking_names_the_first_argument_or_method_a_session_class_lacks():
    """What the agent passes and calls, checked on the class without calling it."""

    class Old:
        def __init__(self, bmc, userid, password, port=623, kg=None, privlevel=4):
            pass

    class TakesAnything:
        def __init__(self, **kwargs):
            pass

        def raw_command(self, netfn, command, data=()):
            pass

    class WithoutLogout(TakesAnything):
        pass

    exceptions = types.SimpleNamespace(IpmiException=Exception)
    assert lacking(types.SimpleNamespace(Session=Old), exceptions) == "Session(keepalive=...)"
    assert lacking(types.SimpleNamespace(Session=WithoutLogout), exceptions) == ("Session.logout()")
    TakesAnything.logout = lambda self: None
    assert lacking(types.SimpleNamespace(Session=TakesAnything), exceptions) is None
    assert lacking(types.SimpleNamespace(), exceptions) == "pyghmi.ipmi.private.session.Session"
    assert lacking(types.SimpleNamespace(Session=TakesAnything), types.SimpleNamespace()) == (
        "pyghmi.exceptions.IpmiException"
    )


def test_short_waits_are_set_only_on_an_io_wait_that_takes_what_they_pass():
    """pyghmi's _io_wait(timeout, myaddr, evq) is wrapped once; a renamed or reshaped one is
    left alone with a note (only the stalls come back)."""
    waits = []
    session = types.SimpleNamespace(
        _io_wait=lambda timeout, myaddr=None, evq=None: waits.append(timeout)
    )
    assert _wait_in_short_slices(session) is None
    session._io_wait(0.7)
    assert waits == [0.01]
    wrapped = session._io_wait
    assert _wait_in_short_slices(session) is None and session._io_wait is wrapped

    reshaped = types.SimpleNamespace(_io_wait=lambda seconds: None)
    original = reshaped._io_wait
    assert "no _io_wait(timeout, myaddr, evq)" in _wait_in_short_slices(reshaped)
    assert reshaped._io_wait is original
    assert "no _io_wait" in _wait_in_short_slices(types.SimpleNamespace())


class NotedDevice(FakePowerDevice):
    """A device with a note for the log, as IpmiDevice has one after a fallback."""

    def login(self):
        super().login()
        self.notes.append("pyghmi 1.7.0: AES through the cryptography package (why)")

    notes: list


def test_the_agent_says_a_devices_notes_once_per_call(fake_clock):
    """Notes are said as WARNING lines once, even over a second login, and the action goes on."""
    device = NotedDevice(fake_clock, state="on", glitches=(1,))
    device.notes = []
    out, err = io.StringIO(), io.StringIO()
    agent = FenceAgent(IPMI.SPEC, lambda config, deadline: device)
    code = main(
        agent,
        ["fence_stackha_ipmi"],
        io.StringIO("ip=bmc\nusername=admin\npassword=pw\naction=off\n"),
        clock=fake_clock,
        stdout=out,
        stderr=err,
    )
    assert (code, out.getvalue()) == (0, "Success: Powered OFF\n")
    notes = [line for line in err.getvalue().splitlines() if "AES" in line]
    assert notes == ["WARNING: pyghmi 1.7.0: AES through the cryptography package (why)"]


BMC_PROBE = """
import sys
from stackha.lab.bmc import make_bmc_class
import pyghmi.ipmi.private.serversession as serversession
original = serversession.ServerSession
cls = make_bmc_class()
print("patched" if serversession.ServerSession is not original else "unpatched")
"""

STAND_IN_BMC = """
class IpmiServer:
    def __init__(self, authdata, port=623, bmcuuid=None, address='::'):
        pass

class Bmc(IpmiServer):
    @classmethod
    def listen(cls, timeout=30):
        pass

    def get_chassis_status(self, session):
        pass

    def get_power_state(self):
        pass

    def power_off(self):
        pass

    def power_on(self):
        pass

    def power_cycle(self):
        pass

    def power_reset(self):
        pass

    def power_shutdown(self):
        pass
"""


def bmc_stand_in(tmp_path, version, server_session, bmc=STAND_IN_BMC):
    return stand_in(
        tmp_path,
        version,
        {
            "pyghmi/ipmi/bmc.py": bmc,
            "pyghmi/ipmi/private/serversession.py": server_session,
        },
    )


def test_the_lab_bmc_refuses_other_cipher_suites_where_pyghmi_has_the_hook(tmp_path):
    """pyghmi's server session has create_open_session_response: the lab's subclass replaces
    it, silently."""
    pyghmi = bmc_stand_in(
        tmp_path,
        "1.5.34",
        "class ServerSession:\n    def create_open_session_response(self, request):\n"
        "        return request\n",
    )
    result = python(BMC_PROBE, [pyghmi, LIB])
    assert (result.returncode, result.stdout, result.stderr) == (0, "patched\n", "")


def test_the_lab_bmc_without_the_hook_runs_as_pyghmi_does_and_logs_why(tmp_path):
    """No create_open_session_response to override: the BMC runs without the cipher-suite-3
    refusal, and its log says so in one line."""
    pyghmi = bmc_stand_in(tmp_path, "1.8.0", "class ServerSession:\n    pass\n")
    result = python(BMC_PROBE, [pyghmi, LIB])
    assert (result.returncode, result.stdout) == (0, "unpatched\n"), result.stderr
    (line,) = result.stderr.splitlines()
    assert line.split(" ", 1)[1] == (
        "pyghmi 1.8.0: its server session has no create_open_session_response to refuse "
        "cipher suites other than 3: this BMC accepts every Open Session, as pyghmi does (a "
        "client that proposes suite 17 first may fail to log in)"
    )


def test_the_lab_bmc_with_a_pyghmi_lacking_a_power_hook_does_not_start(tmp_path):
    """A Bmc without power_cycle could never power the node: the BMC process exits 1 with one
    line naming it, no traceback."""
    bmc = STAND_IN_BMC.replace("def power_cycle(self):", "def power_cycle_renamed(self):")
    pyghmi = bmc_stand_in(tmp_path, "0.9.0", "class ServerSession:\n    pass\n", bmc)
    result = subprocess.run(
        [sys.executable, "-m", "stackha.lab.bmc", str(tmp_path / "lab"), "node1"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{pyghmi}{os.pathsep}{LIB}"},
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.split(" ", 1)[1] == (
        "BMC of node1 cannot start: pyghmi 0.9.0 lacks Bmc.power_cycle(); the lab's BMC needs "
        f"pyghmi >= {MINIMUM_PYGHMI}"
    )


def test_the_lab_bmc_without_pyghmi_does_not_start(tmp_path):
    """No pyghmi (-S): the BMC process exits 1 with one line saying what to install."""
    result = subprocess.run(
        [sys.executable, "-S", "-m", "stackha.lab.bmc", str(tmp_path / "lab"), "node1"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(LIB)},
        timeout=60,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.split(" ", 1)[1] == (
        "BMC of node1 cannot start: pyghmi is not installed (apt install python3-pyghmi)"
    )
