"""Running installed agents as Pacemaker does: an executable, one action, the environment."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

OCF_ROOT = "/usr/lib/ocf"
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": OCF_ROOT, "LC_ALL": "C"}


def stackha(*args: str) -> subprocess.CompletedProcess:
    """The stackha command of this virtualenv."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "stackha"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def stop_child(process: subprocess.Popen, seconds: float = 30.0) -> float:
    """SIGTERM to ``process`` (a child of this one, by pid), SIGKILL if it is still there after
    ``seconds``; reaped either way (polling its pid would see its zombie until then). The
    seconds it took to exit."""
    started = time.monotonic()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return time.monotonic() - started


def run_agent(path, action, env, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(path), action], capture_output=True, text=True, env=env, timeout=timeout
    )


def exit_reason(result: subprocess.CompletedProcess) -> str:
    """The ocf-exit-reason of a finished agent call ('' when it gave none)."""
    return reason_in(result.stderr)


def reason_in(stderr: str) -> str:
    """The ocf-exit-reason an agent's ``stderr`` ends with ('' when it gave none)."""
    lines = stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    return last[len("ocf-exit-reason:") :] if last.startswith("ocf-exit-reason:") else ""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def command_lines_watched_for(*secrets: str):
    """Read every process's command line while the body runs; yields the list of pids whose
    command line held one of ``secrets`` (empty if none did)."""
    seen: list[str] = []
    stop = threading.Event()
    wanted = [secret.encode() for secret in secrets if secret]

    def watch() -> None:
        while not stop.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        line = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if any(secret in line for secret in wanted):
                        seen.append(entry.name)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join()
