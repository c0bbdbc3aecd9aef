"""A probe run by the Python and the pyghmi under test, for tests/package/test_pyghmi_versions.py.

It runs as a package's program runs — ``/usr/bin/python3 -I``, which ignores PYTHONPATH — so it
puts stackha's lib/ (and the pyghmi under test, if given) on ``sys.path`` itself::

    python3 -I pyghmi_probe.py LIB [--pyghmi DIR] bmc PORT STATE_FILE   (password on stdin)
    python3 -I pyghmi_probe.py LIB [--pyghmi DIR] agent AGENT           (JSON request on stdin)

``bmc``: the lab's BMC class (stackha.lab.bmc.make_bmc_class) on 127.0.0.1:PORT, its node's
power in STATE_FILE; prints ``ready`` once it listens, then serves until killed. Power commands
are lines on stderr, as in the lab's BMC log.

``agent``: one call of the fence agent AGENT (fence/fence_stackha_ipmi), in this process
through its ``main``, with the options of the request on stdin (``port``, ``password``,
``action``, ``aes``); prints one JSON line: the exit code, stdout, stderr, and how pyghmi's
session module was loaded (the libcrypto shortcut or not, which pyghmi, which Python). ``aes``
is ``shipped`` (as the package runs), ``no-libcrypto`` (libcrypto.so.3 does not load) or
``misfit`` (the stand-in does not fit pyghmi: its default_backend is not callable, so pyghmi's
session module fails half-way through its import).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path


def bmc(port: int, state_file: str) -> int:
    from stackha.lab.bmc import make_bmc_class

    class ProbeLab:
        """What the lab's BMC asks of a lab: its directory (the busy knob) and one node's power."""

        def __init__(self, state: Path) -> None:
            self.state = state
            self.directory = state.parent

        def power_state(self, node: str) -> str:
            return self.state.read_text().strip()

        def set_power(self, node: str, action: str) -> str:
            state = "off" if action == "off" else "on"
            self.state.write_text(state + "\n")
            return state

    password = sys.stdin.readline().strip()
    server = make_bmc_class()(
        ProbeLab(Path(state_file)), "probe", {"admin": password}, "127.0.0.1", port
    )
    print("ready", flush=True)
    server.listen()
    return 0


def agent(path: str) -> int:
    import runpy

    request = json.loads(sys.stdin.read())
    from stackha.fencing import openssl_aes
    from stackha.fencing.agent import main

    if request["aes"] == "no-libcrypto":
        openssl_aes.LIBCRYPTO = "libcrypto.so.stackha-probe-absent"
    elif request["aes"] == "misfit":
        openssl_aes.default_backend = None  # type: ignore[assignment]
    fence_agent = runpy.run_path(path, run_name="fence_stackha_ipmi_probe")["AGENT"]
    options = (
        f"ip=127.0.0.1\nipport={request['port']}\nusername=admin\n"
        f"password={request['password']}\naction={request['action']}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(fence_agent, ["fence_stackha_ipmi"], io.StringIO(options), stdout=out, stderr=err)
    session = sys.modules.get("pyghmi.ipmi.private.session")
    pyghmi = sys.modules.get("pyghmi")
    backend = getattr(session, "default_backend", None)
    report = {
        "code": code,
        "stdout": out.getvalue(),
        "stderr": err.getvalue(),
        "python": sys.executable,
        "isolated": bool(sys.flags.isolated),
        "pyghmi_file": getattr(pyghmi, "__file__", None),
        "stackha_file": openssl_aes.__file__,  # this checkout's, not an installed package's
        "shortcut": session is not None and getattr(session, "Cipher", None) is openssl_aes.Cipher,
        # Where the default_backend pyghmi's session module bound comes from: this probe's
        # stand-in would mean a half-imported module survived the fallback.
        "default_backend_from": getattr(backend, "__module__", None),
        "cryptography_loaded": "cryptography" in sys.modules,
    }
    print(json.dumps(report))
    return 0


def run(argv: list[str]) -> int:
    lib, rest = argv[0], argv[1:]
    paths = [lib]
    if rest[:1] == ["--pyghmi"]:
        paths.insert(0, rest[1])  # the pyghmi under test before the system's
        rest = rest[2:]
    sys.path[:0] = paths
    role, arguments = rest[0], rest[1:]
    if role == "bmc":
        return bmc(int(arguments[0]), arguments[1])
    if role == "agent":
        return agent(arguments[0])
    sys.stderr.write(f"unknown role {role}\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
