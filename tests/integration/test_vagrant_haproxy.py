"""The Vagrant lab's HAProxy configuration, run by the distribution's HAProxy: it answers the
VM's name on its port and has the stats socket the haproxy agent's monitor asks."""

import os
import socket
import subprocess
import time

from stackha.lab import vagrant_lab

HAPROXY = os.environ.get("STACKHA_HAPROXY", "/usr/sbin/haproxy")


def test_haproxy_answers_the_vms_name_and_its_stats_socket(tmp_path):
    socket_path = tmp_path / "admin.sock"
    with socket.socket() as probe:  # a free loopback port instead of the VMs' 8080
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "haproxy.cfg"
    text = vagrant_lab.haproxy_config("node2", f"127.0.0.1:{port}", str(socket_path))
    assert vagrant_lab.haproxy_config("node2").count(f"bind :{vagrant_lab.HAPROXY_PORT}\n") == 1
    config.write_text(text)
    checked = subprocess.run(
        [HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = subprocess.run(
            ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert answer.stdout == "node2", answer.stderr
        with socket.socket(socket.AF_UNIX) as stats:
            stats.connect(str(socket_path))
            stats.sendall(b"show info\n")
            assert b"Name: HAProxy" in stats.recv(4096)
    finally:
        process.terminate()
        process.wait(timeout=10)
