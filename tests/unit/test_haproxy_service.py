import pytest
from stackha.services import haproxy

ALERTS = """[NOTICE]   (4646) : haproxy version is 2.6.12-1+deb12u4
[ALERT]    (4646) : config : parsing [bad.cfg:2] : unknown keyword 'nonsense' in 'global' section
[ALERT]    (4646) : config : parsing [bad.cfg:7] : unknown keyword 'bogus' in 'frontend' section
[ALERT]    (4646) : config : Error(s) found in configuration file : bad.cfg
[ALERT]    (4646) : config : Fatal errors found in configuration.
"""


def test_the_first_alert_is_the_reason():
    assert haproxy.alert_reason(ALERTS) == (
        "config : parsing [bad.cfg:2] : unknown keyword 'nonsense' in 'global' section (and 1 more)"
    )


def test_check_config_raises_with_haproxys_reason(fake_runner):
    fake_runner.expect(["/usr/sbin/haproxy", "-c", "-f", "/etc/h.cfg"], returncode=1, stderr=ALERTS)
    with pytest.raises(haproxy.InvalidConfig, match="unknown keyword 'nonsense'"):
        haproxy.check_config(fake_runner, "/usr/sbin/haproxy", "/etc/h.cfg", timeout=5)


def test_check_config_accepts_a_valid_file(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/haproxy", "-c", "-f", "/etc/h.cfg"], stdout="Configuration file is valid\n"
    )
    haproxy.check_config(fake_runner, "/usr/sbin/haproxy", "/etc/h.cfg", timeout=5)


def test_start_runs_master_worker_daemon_with_pidfile(fake_runner):
    fake_runner.expect(["/usr/sbin/haproxy", "-W", "-D", "-f", "/etc/h.cfg", "-p", "/run/h.pid"])
    haproxy.start(fake_runner, "/usr/sbin/haproxy", "/etc/h.cfg", "/run/h.pid", timeout=5)


def test_start_failure_carries_the_bind_alert(fake_runner):
    fake_runner.expect(
        ["/usr/sbin/haproxy", "-W", "-D", "-f", "/etc/h.cfg", "-p", "/run/h.pid"],
        returncode=1,
        stderr="[ALERT]    (1) : Starting frontend fe: cannot bind socket "
        "(Address already in use) [127.0.0.1:80]\n",
    )
    with pytest.raises(haproxy.HaproxyError, match="Address already in use"):
        haproxy.start(fake_runner, "/usr/sbin/haproxy", "/etc/h.cfg", "/run/h.pid", timeout=5)


def test_stats_sockets_come_from_the_global_section_only():
    text = """global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 660 level admin  # the admin one
    stats socket ipv4@127.0.0.1:9999 level user
    stats socket unix@/run/haproxy/ro.sock level user
defaults
    mode http
listen stats
    stats socket /not/global.sock
"""
    assert haproxy.stats_sockets(text) == ["/run/haproxy/admin.sock", "/run/haproxy/ro.sock"]


def test_show_info_over_a_real_unix_socket(tmp_path):
    import socket
    import threading

    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        assert conn.recv(100) == b"show info\n"
        conn.sendall(b"Name: HAProxy\nVersion: 2.6.12\nPid: 77\nStopping: 0\n\n")
        conn.close()

    thread = threading.Thread(target=answer)
    thread.start()
    info = haproxy.show_info(path, timeout=2)
    thread.join()
    server.close()
    assert info == haproxy.Info(pid=77, stopping=False, version="2.6.12")


def test_show_info_on_a_missing_socket_names_it(tmp_path):
    with pytest.raises(haproxy.HaproxyError, match="stats socket .*missing.sock does not answer"):
        haproxy.show_info(str(tmp_path / "missing.sock"), timeout=1)
