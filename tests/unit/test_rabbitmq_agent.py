"""ocf:stackha:rabbitmq's decisions with fake Pacemaker tools, a fake rabbitmqctl and a fake
process table: which node forms, who joins whom, when a node boots with force_boot, when it
refuses, what monitor reports, and who forgets a fenced node. No RabbitMQ, no root."""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
import socket
import time
from pathlib import Path

import pytest
from agent_runs import free_port
from fakes import FakeHttpServer, FakeProcess, FakeProcessTable
from stackha.agents import rabbitmq as RABBITMQ
from stackha.ocf.agent import main
from stackha.services.rabbitmq import NODES_PATH

ROOT = Path(__file__).resolve().parents[2]
ATTRD = "/usr/sbin/attrd_updater"
CRM_MON = ["/usr/sbin/crm_mon", "--one-shot", "--inactive", "--output-as=xml"]
STONITH_ADMIN = "/usr/sbin/stonith_admin"
ATTRIBUTE = "rabbitmq-node"
VERSION = "rabbitmq-version"
CLAIM = "rabbitmq-boot"
USER = pwd.getpwuid(os.getuid()).pw_name  # chown and getpwnam work without root
NODES = ("node1", "node2", "node3")
MEMBERS = tuple(f"rabbit@{n}" for n in NODES)
START_S = 180
# Feature flags a node's data has enabled, as RabbitMQ writes them: 3.10.8's, a 4.0.5 node's
# (Mnesia: khepri_db is opt-in there) and a 4.2 node's that enabled Khepri.
FLAGS_310 = frozenset(
    {"implicit_default_bindings", "quorum_queue", "stream_queue", "virtual_host_metadata"}
)
FLAGS_40 = FLAGS_310 | {"message_containers", "stream_filtering", "rabbitmq_4.0.0"}
KHEPRI_FLAGS = FLAGS_40 | {"khepri_db", "rabbitmq_4.1.0", "rabbitmq_4.2.0"}
COOKIE_REFUSED = (
    "Error: unable to perform an operation on node 'rabbit@node2'. Please see diagnostics "
    "information and suggestions below.\n\n"
    "rabbit@node2:\n"
    "  * TCP connection succeeded but Erlang distribution failed\n"
    "  * suggestion: check if the Erlang cookie is identical for all server nodes and CLI tools\n"
)  # as RabbitMQ 3.10.8 prints it


@pytest.fixture(autouse=True)
def resolvable_nodes(monkeypatch):
    """node1..node3 resolve (validate checks the host part of the node name)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real("127.0.0.1" if host in NODES else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def processes(fake_clock, monkeypatch):
    table = FakeProcessTable(fake_clock)
    monkeypatch.setattr(RABBITMQ, "PROCESSES", table)
    return table


class Broker:
    """One node's broker under test: its files under tmp_path, the fakes, and the commands
    the agent is expected to run, in order."""

    def __init__(self, tmp_path, runner, clock, processes):
        self.runner = runner
        self.clock = clock
        self.processes = processes
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        for name in ("rabbitmq-server", "rabbitmqctl", "rabbitmq-diagnostics"):
            script = bin_dir / name
            script.write_text("#!/bin/sh\nexit 99\n")  # never run: the runner is fake
            script.chmod(0o755)
        self.server = str(bin_dir / "rabbitmq-server")
        self.lib_dir = tmp_path / "lib"  # the installed version, beside bin as on Debian
        self.installs("3.10.8")
        self.ctl_path = str(bin_dir / "rabbitmqctl")
        self.diagnostics = str(bin_dir / "rabbitmq-diagnostics")
        self.home = tmp_path / "home"
        self.home.mkdir()
        (self.home / ".erlang.cookie").write_text("COOKIECOOKIECOOKIE")
        self.mnesia_base = tmp_path / "mnesia"
        self.log_dir = tmp_path / "log"
        self.pid_file = tmp_path / "run" / "rabbitmq.pid"
        self.credentials = tmp_path / "monitor.credentials"
        self.credentials.write_text("username=stackha\npassword=secret\n")
        self.management_port = free_port()  # nothing answers unless a test serves the API

    def env(self, node="node1", **extra):
        return {
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": "rabbitmq:0",
            "OCF_RESKEY_crm_feature_set": "3.16.1",
            "OCF_RESKEY_CRM_meta_on_node": node,
            "OCF_RESKEY_CRM_meta_clone_max": "3",
            "OCF_RESKEY_CRM_meta_timeout": f"{START_S * 1000}",
            "OCF_RESKEY_server": self.server,
            "OCF_RESKEY_ctl": self.ctl_path,
            "OCF_RESKEY_diagnostics": self.diagnostics,
            "OCF_RESKEY_user": USER,
            "OCF_RESKEY_home": str(self.home),
            "OCF_RESKEY_pid_file": str(self.pid_file),
            "OCF_RESKEY_log_dir": str(self.log_dir),
            "OCF_RESKEY_mnesia_base": str(self.mnesia_base),
            "OCF_RESKEY_monitor_credentials": str(self.credentials),
            "OCF_RESKEY_management_port": str(self.management_port),
            **extra,
        }

    def run(self, action, env):
        err = io.StringIO()
        code = main(
            RABBITMQ.AGENT,
            ["rabbitmq", action],
            env,
            runner=self.runner,
            clock=self.clock,
            stdout=io.StringIO(),
            stderr=err,
        )
        return code, err.getvalue()

    def installs(self, version):
        """RabbitMQ ``version`` is what the server script belongs to."""
        if self.lib_dir.exists():
            for old in self.lib_dir.iterdir():
                old.rmdir()
        (self.lib_dir / f"rabbitmq_server-{version}").mkdir(parents=True)
        self.version = version

    # -- this node's files --------------------------------------------------------------

    def data(self, name="rabbit@node1"):
        return self.mnesia_base / name

    def has_data(self, members, name="rabbit@node1", flags=None):
        """Data of a node that was a member of the cluster of ``members`` (Mnesia's files),
        with the feature flags ``flags`` enabled when given (RabbitMQ's own file of them)."""
        data = self.data(name)
        data.mkdir(parents=True)
        listed = ",".join(members)
        (data / "cluster_nodes.config").write_text(f"{{[{listed}],[{listed}]}}.\n")
        (data / "nodes_running_at_shutdown").write_text(f"[{listed}].\n")
        if flags is not None:
            atoms = ",".join(f"'{f}'" if "." in f else f for f in sorted(flags))
            (self.mnesia_base / f"{name}-feature_flags").write_text(f"[{atoms}].\n")

    def has_khepri_data(self, name="rabbit@node1", flags=KHEPRI_FLAGS):
        """Data of a Khepri node: the feature flags file, and Ra's files (no Mnesia's)."""
        data = self.data(name)
        (data / "coordination" / name).mkdir(parents=True)
        atoms = ",".join(f"'{f}'" if "." in f else f for f in sorted(flags))
        (self.mnesia_base / f"{name}-feature_flags").write_text(f"[{atoms}].\n")

    def running(self, pid=4321, name="beam.smp"):
        """A broker that runs: its pid file, and its process in the table."""
        self.pid_file.parent.mkdir(exist_ok=True)
        self.pid_file.write_text(f"{pid}\n")
        self.processes.add(pid, FakeProcess(name, dies_on={signal.SIGTERM: 1.0}))
        return pid

    def boots(self):
        """The server spawned writes its pid file and runs, as the real one does."""
        spawn = self.runner.spawn

        def spawned(spec):
            pid = spawn(spec)
            self.running(pid)
            return pid

        self.runner.spawn = spawned

    # -- expected commands ----------------------------------------------------------------

    def ctl(self, *argv):
        return [self.ctl_path, *argv]

    def expect_ctl(self, *argv, **result):
        self.runner.expect(self.ctl(*argv), **result)

    def expect_peers(self, *values):
        """attrd_updater --query --all, answering with [(Pacemaker node, Erlang node)...]."""
        lines = "".join(f'name="{ATTRIBUTE}" host="{n}" value="{v}"\n' for n, v in values)
        self.runner.expect([ATTRD, "--name", ATTRIBUTE, "--query", "--all"], stdout=lines)

    def expect_peer_status(self, peer="rabbit@node2", members=MEMBERS, running=MEMBERS, **result):
        """The running cluster's members, asked of ``peer`` before anything boots."""
        self.expect_ctl(
            "-n",
            peer,
            "cluster_status",
            "--formatter",
            "json",
            **{"stdout": cluster_status(members, running), **result},
        )

    def expect_crm_mon(self, online=NODES, offline=(), started_on=()):
        nodes = "".join(
            f'    <node name="{n}" id="{i}" online="{str(n in online).lower()}" '
            f'standby="false" unclean="false" type="member"/>\n'
            for i, n in enumerate(sorted((*online, *offline)), 1)
        )
        instances = "".join(
            '      <resource id="rabbitmq" resource_agent="ocf:stackha:rabbitmq" '
            'role="Started" active="true" failed="false" nodes_running_on="1">'
            f'<node name="{n}" id="0" cached="true"/></resource>\n'
            for n in started_on
        )
        xml = (
            '<pacemaker-result api-version="2.25" request="crm_mon --output-as=xml">\n'
            '  <summary><current_dc present="true" name="node1" with_quorum="true"/></summary>\n'
            f"  <nodes>\n{nodes}  </nodes>\n"
            '  <resources>\n    <clone id="rabbitmq-clone" multi_state="false">\n'
            f"{instances}    </clone>\n  </resources>\n"
            "</pacemaker-result>\n"
        )
        self.runner.expect(CRM_MON, stdout=xml)

    def expect_boot(self, seconds_used=0, rejoining=False, **result):
        """Spawn, then `rabbitmqctl wait` with the start timeout left less 10 s — or, for a
        broker rejoining running members with its data, BOOT_CHECK_S at a time."""
        wait = int(RABBITMQ.BOOT_CHECK_S) if rejoining else START_S - seconds_used - 10
        self.expect_ctl("wait", "--timeout", str(wait), str(self.pid_file), **result)

    def expect_join(self, seed):
        self.expect_ctl("stop_app")
        self.expect_ctl("join_cluster", seed)
        self.expect_ctl("start_app")

    def expect_publish(self, name="rabbit@node1"):
        self.runner.expect([ATTRD, "--name", VERSION, "--update", self.version])
        self.runner.expect([ATTRD, "--name", ATTRIBUTE, "--update", name])

    def expect_withdraw(self):
        self.runner.expect([ATTRD, "--name", ATTRIBUTE, "--delete"])
        self.runner.expect([ATTRD, "--name", VERSION, "--delete"])

    def expect_published_versions(self, *values):
        """attrd_updater --query --all of the versions: [(Pacemaker node, version)...]."""
        lines = "".join(f'name="{VERSION}" host="{n}" value="{v}"\n' for n, v in values)
        self.runner.expect([ATTRD, "--name", VERSION, "--query", "--all"], stdout=lines)

    def expect_claim(self, value):
        self.runner.expect([ATTRD, "--name", CLAIM, "--update", value])

    def expect_claims(self, *values):
        """attrd_updater --query --all of the boot claims: [(Pacemaker node, value)...]."""
        lines = "".join(f'name="{CLAIM}" host="{n}" value="{v}"\n' for n, v in values)
        self.runner.expect([ATTRD, "--name", CLAIM, "--query", "--all"], stdout=lines)

    def expect_withdraw_claim(self):
        self.runner.expect([ATTRD, "--name", CLAIM, "--delete"])

    def expect_monitoring_user(self):
        """The management API does not answer yet: the monitoring user is made."""
        self.expect_ctl("add_user", "stackha", stdin="secret\n")
        self.expect_ctl("set_user_tags", "stackha", "monitoring")

    def expect_cluster_wide_setup(self, vhosts=("/",)):
        listing = json.dumps([{"name": v} for v in vhosts])
        self.expect_ctl("list_vhosts", "--formatter", "json", stdout=listing)

    def expect_removed_nodes_check(self, members=MEMBERS, running=MEMBERS, configured=NODES):
        self.expect_crm_mon(online=configured)
        self.expect_ctl(
            "cluster_status", "--formatter", "json", stdout=cluster_status(members, running)
        )

    def started_spawn(self):
        (spawned,) = self.runner.spawned
        return spawned


def cluster_status(members, running, version=None, khepri=None):
    """cluster_status --formatter json (trimmed); with ``version``, each running member's
    version and the feature flags (khepri_db enabled or not), as 3.10 and 4.x print them."""
    data = {"disk_nodes": list(members), "ram_nodes": [], "running_nodes": list(running)}
    # every running member's version, as 3.10 and 4.x print them (3.10.8 unless told)
    data["versions"] = {n: {"rabbitmq_version": version or "3.10.8"} for n in running}
    if version is not None:
        flags = [{"name": "quorum_queue", "state": "enabled"}]
        if khepri is not None:
            flags.append({"name": "khepri_db", "state": "enabled" if khepri else "disabled"})
        data["feature_flags"] = flags
    return json.dumps(data)


def reason(err):
    last = err.strip().splitlines()[-1] if err.strip() else ""
    prefix = "ocf-exit-reason:"
    return last[len(prefix) :] if last.startswith(prefix) else ""


@pytest.fixture
def broker(tmp_path, fake_runner, fake_clock, processes):
    return Broker(tmp_path, fake_runner, fake_clock, processes)


# -- start: a node without data --------------------------------------------------------------


def test_a_fresh_node_joins_a_running_peer_and_publishes_itself(broker):
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()  # the cluster-wide setup is the former's, not a joiner's
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 joined rabbit@node2" in err


def test_the_broker_is_spawned_as_its_user_with_its_environment(broker):
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    assert broker.run("start", broker.env())[0] == 0
    spawned = broker.started_spawn()
    assert spawned.argv == (broker.server,)
    assert spawned.user == USER
    assert spawned.cwd == str(broker.home)
    assert spawned.output_path == f"{broker.log_dir}/rabbit@node1-startup.log"
    assert spawned.env == {
        "HOME": str(broker.home),
        "RABBITMQ_NODENAME": "rabbit@node1",
        "RABBITMQ_PID_FILE": str(broker.pid_file),
        "RABBITMQ_LOG_BASE": str(broker.log_dir),
        "RABBITMQ_MNESIA_BASE": str(broker.mnesia_base),
        # three clone instances: a majority can keep serving
        "RABBITMQ_SERVER_START_ARGS": "-rabbit cluster_partition_handling pause_minority",
    }
    assert broker.log_dir.is_dir() and broker.pid_file.parent.is_dir()


def test_a_fresh_node_that_is_first_online_forms_the_cluster(broker):
    broker.expect_peers()
    broker.expect_crm_mon()  # node1 is the first online node
    broker.expect_boot()
    broker.expect_publish()  # no stop_app/join_cluster: there is nobody to join
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 formed a new cluster" in err


def test_the_former_creates_missing_vhosts_users_and_policies(broker, tmp_path):
    password_file = tmp_path / "openstack.password"
    password_file.write_text("openstack-secret\n")
    users = [
        {
            "name": "openstack",
            "password_file": str(password_file),
            "tags": ["administrator"],
            "permissions": {"openstack": [".*", ".*", ".*"]},
        }
    ]
    policies = [{"name": "limits", "pattern": "^notifications", "definition": {"max-length": 1000}}]
    env = broker.env(
        OCF_RESKEY_vhosts="/ openstack",
        OCF_RESKEY_users=json.dumps(users),
        OCF_RESKEY_policies=json.dumps(policies),
    )
    broker.expect_peers()
    broker.expect_crm_mon()
    broker.expect_boot()
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup(vhosts=("/",))
    broker.expect_ctl("add_vhost", "openstack", "--default-queue-type", "quorum")
    broker.expect_ctl("add_user", "openstack", stdin="openstack-secret\n")
    broker.expect_ctl("set_user_tags", "openstack", "administrator")
    broker.expect_ctl("set_permissions", "-p", "openstack", "openstack", ".*", ".*", ".*")
    broker.expect_ctl("list_policies", "-p", "/", "--formatter", "json", stdout="[]")
    broker.expect_ctl(
        "set_policy",
        "--vhost",
        "/",
        "--priority",
        "0",
        "--apply-to",
        "all",
        "limits",
        "^notifications",
        '{"max-length":1000}',
    )
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", env)
    assert code == 0, err


def test_a_policy_rabbitmq_refuses_fails_the_start_as_not_configured(broker):
    """The policy is the configuration's, not this node's: 6, and the broker booted for the
    start is stopped again. (What is set, changed or left alone: test_rabbitmq_service.py.)"""
    policies = [{"name": "limits", "pattern": "^q", "definition": {"max-lenght": 1}}]
    broker.expect_peers()
    broker.expect_crm_mon()
    broker.expect_boot()
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_ctl("list_policies", "-p", "/", "--formatter", "json", stdout="[]")
    broker.expect_ctl(
        *("set_policy", "--vhost", "/", "--priority", "0", "--apply-to", "all"),
        *("limits", "^q", '{"max-lenght":1}'),
        returncode=64,
        stderr='Error:\nValidation failed\n\n<<"max-lenght">> are not recognised policy settings',
    )
    broker.expect_withdraw()
    broker.boots()
    code, err = broker.run("start", broker.env(OCF_RESKEY_policies=json.dumps(policies)))
    assert code == 6, err
    assert reason(err).startswith("policy 'limits' refused by RabbitMQ: set_policy: ")
    assert broker.processes.processes == {}  # stopped


def test_a_fresh_node_waits_for_the_first_online_node_to_form_then_joins_it(broker):
    env = broker.env(node="node2")
    broker.expect_peers()
    broker.expect_crm_mon()  # node1 is first online: node2 waits for it
    broker.expect_peers()
    broker.expect_crm_mon()
    broker.expect_peers(("node1", "rabbit@node1"))  # node1 formed
    broker.expect_boot(seconds_used=2)
    broker.expect_join("rabbit@node1")
    broker.expect_publish("rabbit@node2")
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", env)
    assert code == 0, err
    assert broker.clock.sleeps == [1.0, 1.0]
    assert "rabbit@node2 joined rabbit@node1" in err


def test_after_the_grace_period_the_first_node_starting_the_clone_forms(broker):
    """node1 is online but does not start its instance (say it is banned there): after
    FORMER_GRACE_S the first node where the clone starts forms instead of everyone waiting."""
    env = broker.env(node="node2")
    broker.expect_peers()
    polls = int(RABBITMQ.FORMER_GRACE_S / RABBITMQ.POLL_S)
    for _ in range(polls):
        broker.expect_crm_mon(started_on=("node2", "node3"))
        broker.expect_peers()
    broker.expect_crm_mon(started_on=("node2", "node3"))
    broker.expect_boot(seconds_used=polls)
    broker.expect_publish("rabbit@node2")
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", env)
    assert code == 0, err
    assert "rabbit@node2 formed a new cluster" in err


def test_a_fresh_node_gives_up_waiting_while_it_still_has_time_to_say_why(broker):
    """With less than 60 s left, a start that has not joined fails with its reason rather than
    running into Pacemaker's timeout: here after 3 s of a 62 s start."""
    env = broker.env(node="node2", OCF_RESKEY_CRM_meta_timeout="62000")
    for _ in range(4):
        broker.expect_peers()
        broker.expect_crm_mon()  # node1 is first online and never forms
    code, err = broker.run("start", env)
    assert code == 1
    assert reason(err) == "no running member to join; waiting for node1 to form"
    assert broker.clock.sleeps == [1.0, 1.0, 1.0]
    assert broker.runner.spawned == []


# -- start: a node with data -----------------------------------------------------------------


# After an outage of every member (a site-wide power loss) no member runs: the starting
# instances agree through their boot claims on one to boot first; the others wait for it.


def test_after_an_outage_the_first_by_name_of_every_member_starting_boots_first(broker):
    """All three instances are starting: no settle wait; node1 takes the first boot, checks
    that it still holds after BOOT_COMMIT_S, and boots with force_boot (no data is known to
    be newer than another's: Mnesia would wait for the others for ever)."""
    broker.has_data(MEMBERS)
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node1")
    broker.expect_peers()
    broker.expect_claims(("node2", "waiting:0:rabbit@node2"), ("node3", "waiting:0:rabbit@node3"))
    broker.expect_claim("first:0:rabbit@node1")
    broker.expect_peers()
    broker.expect_claims(("node2", "waiting:0:rabbit@node2"), ("node3", "waiting:0:rabbit@node3"))
    broker.expect_peers()
    broker.expect_ctl("force_boot")
    broker.expect_boot(seconds_used=2)
    broker.expect_publish()
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()  # it restarted the cluster: the setup is its
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert broker.clock.sleeps == [RABBITMQ.BOOT_COMMIT_S]
    assert "rabbit@node1 rejoined its cluster with its data" in err
    assert "force_boot" in err


def test_after_an_outage_a_member_boots_alongside_the_one_that_took_the_first_boot(broker):
    """node1 took the first boot: node2 boots at once without force_boot (Mnesia loads from
    node1 once node1 is up), waiting BOOT_CHECK_S at a time while node1 still boots first."""
    broker.has_data(MEMBERS, name="rabbit@node2")
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node2")
    broker.expect_peers()
    broker.expect_claims(("node1", "first:0:rabbit@node1"))
    broker.expect_peers()
    broker.expect_boot(rejoining=True, **TIMED_OUT)  # node1 not up yet
    broker.expect_peers()
    broker.expect_claims(("node1", "first:0:rabbit@node1"), ("node2", "waiting:0:rabbit@node2"))
    broker.expect_boot(rejoining=True)
    broker.expect_publish("rabbit@node2")
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env(node="node2"))
    assert code == 0, err
    assert broker.clock.sleeps == []
    assert "rabbit@node1 boots first: booting alongside it to rejoin it" in err


def test_a_member_booting_alongside_gives_up_when_the_first_one_stops_booting(broker):
    """node1's first boot failed (its claim withdrawn, nothing runs): node2's Mnesia would wait
    for ever; node2 stops its VM and decides again — node3 runs by then, and node2 rejoins it."""
    broker.has_data(MEMBERS, name="rabbit@node2")
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node2")
    broker.expect_peers()
    broker.expect_claims(("node1", "first:0:rabbit@node1"))
    broker.expect_peers()
    broker.expect_boot(rejoining=True, **TIMED_OUT)
    broker.expect_peers()
    broker.expect_claims(("node2", "waiting:0:rabbit@node2"))  # node1's claim is gone
    broker.expect_withdraw_claim()
    broker.expect_peers(("node3", "rabbit@node3"))  # deciding again
    broker.expect_peer_status("rabbit@node3", running=("rabbit@node3",))
    broker.expect_boot(rejoining=True)
    broker.expect_publish("rabbit@node2")
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env(node="node2"))
    assert code == 0, err
    assert "boot given up: no member runs and none boots first any more" in err
    assert len(broker.runner.spawned) == 2


def test_after_an_outage_a_member_starting_alone_boots_first_after_the_settle_window(broker):
    """Pacemaker started only node1's instance (node2 and node3 are offline, or their
    instances are not starting): node1 waits BOOT_SETTLE_S for claims, then boots first."""
    broker.has_data(MEMBERS)
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node1")
    polls = int(RABBITMQ.BOOT_SETTLE_S / RABBITMQ.POLL_S)
    for _ in range(polls + 1):
        broker.expect_peers()
        broker.expect_claims()
    broker.expect_claim("first:0:rabbit@node1")
    broker.expect_peers()
    broker.expect_claims()
    broker.expect_peers()
    broker.expect_ctl("force_boot")
    broker.expect_boot(seconds_used=polls + 2)
    broker.expect_publish()
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert broker.clock.sleeps == [RABBITMQ.POLL_S] * polls + [RABBITMQ.BOOT_COMMIT_S]


def test_after_an_outage_the_last_member_down_boots_first_without_force_boot(broker):
    """node3's data says it ran last (nodes_running_at_shutdown names it alone): its copy is
    the newest, it boots first without waiting and without force_boot; node1, starting at
    the same time, waits for it although its name sorts first."""
    broker.has_data(MEMBERS, name="rabbit@node3")
    (broker.data("rabbit@node3") / "nodes_running_at_shutdown").write_text("[rabbit@node3].\n")
    broker.expect_peers()
    broker.expect_claim("waiting:1:rabbit@node3")
    broker.expect_peers()
    broker.expect_claims(("node1", "waiting:0:rabbit@node1"))
    broker.expect_claim("first:1:rabbit@node3")
    broker.expect_peers()
    broker.expect_claims(("node1", "waiting:0:rabbit@node1"))
    broker.expect_peers()
    broker.expect_boot(seconds_used=2)
    broker.expect_publish("rabbit@node3")
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env(node="node3"))
    assert code == 0, err


def test_after_an_outage_a_member_defers_to_the_last_member_down(broker):
    broker.has_data(MEMBERS)
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node1")
    broker.expect_peers()
    broker.expect_claims(("node3", "waiting:1:rabbit@node3"))
    broker.expect_peers(("node3", "rabbit@node3"))
    broker.expect_peers(("node3", "rabbit@node3"))
    broker.expect_boot(seconds_used=1, rejoining=True)
    broker.expect_publish()
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "waiting for rabbit@node3 to boot first" in err


def test_of_two_instances_that_took_the_first_boot_at_once_the_later_name_gives_way(broker):
    """node1's claim reached node2 only after node2's settle window (attrd slow on a loaded
    node): both took the first boot. After BOOT_COMMIT_S node2 sees node1's, goes back to
    waiting and boots alongside node1 without force_boot; node1 keeps it (the same rule on
    both sides)."""
    broker.has_data(MEMBERS, name="rabbit@node2")
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node2")
    polls = int(RABBITMQ.BOOT_SETTLE_S / RABBITMQ.POLL_S)
    for _ in range(polls + 1):
        broker.expect_peers()
        broker.expect_claims(("node3", "waiting:0:rabbit@node3"))
    broker.expect_claim("first:0:rabbit@node2")
    broker.expect_peers()
    broker.expect_claims(("node1", "first:0:rabbit@node1"), ("node3", "waiting:0:rabbit@node3"))
    broker.expect_claim("waiting:0:rabbit@node2")
    broker.expect_peers()
    broker.expect_boot(rejoining=True)
    broker.expect_publish("rabbit@node2")
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env(node="node2"))
    assert code == 0, err
    assert "rabbit@node1 boots first: booting alongside it" in err


def test_after_an_outage_a_wait_for_a_first_that_never_boots_ends_inside_the_budget(broker):
    """node1, the last member down, claimed and never takes the first boot (its start hangs):
    node2 fails while BOOT_BUDGET_S of its start is left, saying what it waited for and what
    to do, and withdraws its claim; nothing booted, nothing wiped."""
    broker.has_data(MEMBERS, name="rabbit@node2")
    env = broker.env(node="node2", OCF_RESKEY_CRM_meta_timeout="65000")
    broker.expect_peers()
    broker.expect_claim("waiting:0:rabbit@node2")
    for _ in range(7):  # 65 s, 1 s a poll, until less than BOOT_BUDGET_S (60 s) is left
        broker.expect_peers()
        broker.expect_claims(("node1", "waiting:1:rabbit@node1"))
    broker.expect_withdraw_claim()
    code, err = broker.run("start", env)
    assert code == 1
    assert reason(err) == (
        "no member of rabbit@node1, rabbit@node2, rabbit@node3 runs and rabbit@node1 did not "
        "boot within 6 s (not starting: rabbit@node3); start RabbitMQ on one member "
        "(pcs resource cleanup), and the others follow"
    )
    assert broker.runner.spawned == []
    assert broker.data("rabbit@node2").exists()


def test_a_cluster_of_one_member_boots_with_its_data_without_claims(broker):
    broker.has_data(("rabbit@node1",))
    broker.expect_peers()
    broker.expect_boot()
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check(members=("rabbit@node1",), running=("rabbit@node1",))
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err


def test_a_member_with_a_running_peer_rejoins_with_its_data_without_join_cluster(broker):
    broker.has_data(MEMBERS)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_ctl(
        "-n",
        "rabbit@node2",
        "cluster_status",
        "--formatter",
        "json",
        stdout=cluster_status(MEMBERS, ("rabbit@node2",)),
    )
    broker.expect_boot(rejoining=True)
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 rejoined its cluster with its data" in err
    assert broker.data().is_dir()


TIMED_OUT = {"returncode": 69, "stderr": "Error:\ntimed out waiting for the node to start\n"}


@pytest.mark.parametrize(
    "first_wait",
    [
        pytest.param(TIMED_OUT, id="mnesia-still-syncing"),
        # Seen in the lab on a loaded node: `rabbitmqctl wait --timeout 15` still running
        # after 20 s. One more chunk without an answer, not a start failure with a traceback.
        pytest.param({"timed_out": True}, id="rabbitmqctl-overruns-its-own-timeout"),
    ],
)
def test_a_rejoining_broker_keeps_waiting_while_a_member_it_rejoins_runs(broker, first_wait):
    broker.has_data(MEMBERS)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(running=("rabbit@node2",))
    broker.expect_boot(rejoining=True, **first_wait)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_boot(rejoining=True)
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "Traceback" not in err


def test_a_boot_whose_rabbitmqctl_wait_overruns_fails_with_a_reason(broker):
    """A broker booting alone (no chunks): its one `wait` overran the start's budget. The
    start fails with a reason naming it, and the VM it spawned is stopped."""
    broker.has_data(("rabbit@node1",))
    broker.expect_peers()
    broker.expect_boot(timed_out=True)
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 1, err
    assert "Traceback" not in err
    assert reason(err).startswith("rabbit@node1 did not boot: boot:")
    assert "did not finish within" in reason(err)
    assert [(p, sig) for p, sig, _ in broker.processes.signals] == [(4001, signal.SIGTERM)]


def test_a_rejoining_broker_whose_members_all_went_away_gives_up_and_boots_first(broker):
    """A crash during the recovery: node2, the only member running, died while node1 waited
    for it. Mnesia would wait past the start's budget: the boot is given up (the VM stopped)
    and decided again — no member runs now, node1 is the only instance starting (node2's
    node is down), so after the settle window it boots first with force_boot."""
    broker.has_data(MEMBERS)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(running=("rabbit@node2",))
    broker.expect_boot(rejoining=True, **TIMED_OUT)
    broker.expect_peers()  # node2 is gone
    broker.expect_peers()  # deciding again
    broker.expect_claim("waiting:0:rabbit@node1")
    polls = int(RABBITMQ.BOOT_SETTLE_S / RABBITMQ.POLL_S)
    for _ in range(polls + 1):
        broker.expect_peers()
        broker.expect_claims()
    broker.expect_claim("first:0:rabbit@node1")
    broker.expect_peers()
    broker.expect_claims()
    broker.expect_peers()
    broker.expect_ctl("force_boot")
    # the first VM took a little over 1 s to stop: 13.x s used, the timeout rounded down
    broker.expect_boot(seconds_used=1 + polls + 2 + 1)
    broker.expect_publish()
    broker.expect_withdraw_claim()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "boot given up: every member it was rejoining (rabbit@node2) went away" in err
    first, second = broker.runner.spawned
    assert [(p, sig) for p, sig, _ in broker.processes.signals] == [(4001, signal.SIGTERM)]


def test_a_node_its_cluster_forgot_sets_its_data_aside_and_joins_afresh(broker):
    broker.has_data(MEMBERS)
    broker.expect_peers(("node2", "rabbit@node2"))
    forgotten = ("rabbit@node2", "rabbit@node3")
    broker.expect_ctl(
        "-n",
        "rabbit@node2",
        "cluster_status",
        "--formatter",
        "json",
        stdout=cluster_status(forgotten, forgotten),
    )
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert not broker.data().exists()
    (kept,) = broker.mnesia_base.iterdir()
    assert kept.name.startswith("rabbit@node1.set-aside-")
    assert (kept / "cluster_nodes.config").exists()  # moved, never deleted


def test_data_of_another_cluster_is_never_joined_away(broker):
    broker.has_data(("rabbit@other1", "rabbit@node1"))
    broker.expect_peers(("node2", "rabbit@node2"))
    code, err = broker.run("start", broker.env())
    assert code == 1
    assert reason(err) == (
        f"{broker.data()} belongs to a cluster of rabbit@other1, rabbit@node1, not to the "
        "running members rabbit@node2; refusing to join (it would discard this node's data): "
        "move the data away to join afresh"
    )
    assert broker.runner.spawned == []
    assert (broker.data() / "cluster_nodes.config").exists()


# -- start: failures -------------------------------------------------------------------------


def test_a_peer_refusing_the_erlang_cookie_stops_the_start_before_anything_boots(broker):
    broker.has_data(MEMBERS)  # with data it would otherwise wait minutes for refusing peers
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(stdout="", returncode=69, stderr=COOKIE_REFUSED)
    code, err = broker.run("start", broker.env())
    assert code == 5  # this node's cookie file: Pacemaker keeps the clone running elsewhere
    assert reason(err) == (
        f"rabbit@node2 refused rabbit@node1: the Erlang cookie in {broker.home}/.erlang.cookie "
        "differs from the cluster's"
    )
    assert broker.runner.spawned == []


def test_a_join_refused_for_the_erlang_cookie_stops_the_broker_it_booted(broker):
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_ctl("stop_app")
    broker.expect_ctl("join_cluster", "rabbit@node2", returncode=69, stderr=COOKIE_REFUSED)
    broker.expect_withdraw()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert "the Erlang cookie in" in reason(err)
    pid = broker.runner.next_pid
    assert [(p, s) for p, s, _ in broker.processes.signals] == [(pid, signal.SIGTERM)]


def test_a_peer_that_refuses_the_join_is_skipped_for_the_next(broker):
    broker.expect_peers(("node2", "rabbit@node2"), ("node3", "rabbit@node3"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_ctl("stop_app")
    broker.expect_ctl(
        "join_cluster", "rabbit@node2", returncode=70, stderr="Error: {:inconsistent_cluster}"
    )
    broker.expect_ctl("start_app")
    broker.expect_join("rabbit@node3")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 joined rabbit@node3" in err


HALF_JOIN = (
    "Error: {:rabbit, {{:badmatch, {:error, {:normal, {:mnesia_app, :start, [:normal, []]}}}}, "
    "{:rabbit, :start, [:normal, []]}}}"
)


def test_a_join_that_fails_half_way_is_set_aside_and_made_again_afresh(broker):
    """join_cluster accepted, then start_app failed on the merged schema (two nodes joined
    one seed at once: Mnesia's combine_error, seen with 3.10.8 in the lab, after which every
    boot of that data failed). The broker is stopped, the data the join made kept aside, the
    seed told to forget this node, and the start begins again: this time the join works."""
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_ctl("stop_app")
    broker.expect_ctl("join_cluster", "rabbit@node2")
    broker.expect_ctl("start_app", returncode=69, stderr=HALF_JOIN)
    broker.expect_ctl("-n", "rabbit@node2", "forget_cluster_node", "rabbit@node1")
    broker.expect_withdraw()
    # decided again from the beginning
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot(seconds_used=2)
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    run, made = broker.runner.run, []

    def join_makes_data(argv, **options):  # what the first join made (a fake one makes none)
        if list(argv[-2:]) == ["join_cluster", "rabbit@node2"] and not made:
            made.append(broker.data())
            broker.data().mkdir(parents=True)
            (broker.data() / "schema.DAT").write_text("half-merged")
        return run(argv, **options)

    broker.runner.run = join_makes_data
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 joined rabbit@node2" in err
    assert "failed half-way" in err
    (kept,) = [p for p in broker.mnesia_base.iterdir() if "set-aside" in p.name]
    assert (kept / "schema.DAT").read_text() == "half-merged"  # moved, never deleted


def test_joins_that_keep_failing_half_way_end_the_start(broker):
    """After MAX_HALF_JOINS fresh attempts the start fails, saying so, the broker stopped."""
    attempts = RABBITMQ.MAX_HALF_JOINS + 1
    # the start's seconds gone before each boot (the stops of the broker before it), as the
    # wait's timeout shows them rounded down
    USED = (0, 2, 3)
    for attempt in range(attempts):
        broker.expect_peers(("node2", "rabbit@node2"))
        broker.expect_peer_status()
        broker.expect_boot(seconds_used=USED[attempt])
        broker.expect_ctl("stop_app")
        broker.expect_ctl("join_cluster", "rabbit@node2")
        broker.expect_ctl("start_app", returncode=69, stderr=HALF_JOIN)
        if attempt < attempts - 1:
            broker.expect_ctl("-n", "rabbit@node2", "forget_cluster_node", "rabbit@node1")
        broker.expect_withdraw()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 1
    assert reason(err).startswith(
        f"rabbit@node1 joined rabbit@node2 but could not start on the merged cluster {attempts} "
        "times: "
    )
    assert len(broker.runner.spawned) == attempts
    assert all(s == signal.SIGTERM for _, s, _ in broker.processes.signals)


def test_a_broker_that_does_not_boot_fails_with_the_reason_from_its_log(broker):
    broker.log_dir.mkdir()
    (broker.log_dir / "rabbit@node1.log").write_text(
        "2026-11-25 10:43:07 [info] Starting RabbitMQ 3.10.8\n"
        "2026-11-25 10:43:08 [error] Error during startup: {error,eaddrinuse}\n"
    )
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_ctl(
        "wait",
        "--timeout",
        str(START_S - 10),
        str(broker.pid_file),
        returncode=70,
        stderr="Error: process_not_running",
    )
    code, err = broker.run("start", broker.env())
    assert code == 1
    assert reason(err) == ("rabbit@node1 did not boot: Error during startup: {error,eaddrinuse}")


def test_a_member_of_a_removed_pacemaker_node_is_forgotten_after_start(broker):
    """node3 was removed from the Pacemaker cluster by the operator and its broker is down."""
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check(
        running=("rabbit@node1", "rabbit@node2"), configured=("node1", "node2")
    )
    broker.expect_ctl("forget_cluster_node", "rabbit@node3")
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "forgot rabbit@node3: its node is no longer in the Pacemaker cluster" in err


def test_a_running_member_of_a_removed_node_is_not_forgotten(broker):
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status()
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check(configured=("node1", "node2"))  # node3 still runs
    broker.boots()
    assert broker.run("start", broker.env())[0] == 0


def test_a_start_of_a_running_broker_only_publishes_it(broker):
    broker.running()
    broker.expect_publish()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert broker.runner.spawned == []


# -- stop ------------------------------------------------------------------------------------


def test_stop_terminates_the_broker_and_withdraws_its_attribute(broker):
    pid = broker.running()
    broker.expect_withdraw()
    broker.expect_withdraw_claim()
    code, err = broker.run("stop", broker.env())
    assert code == 0, err
    assert [(p, s) for p, s, _ in broker.processes.signals] == [(pid, signal.SIGTERM)]
    assert not broker.pid_file.exists()


def test_stop_of_a_stopped_broker_withdraws_its_attribute(broker):
    broker.expect_withdraw()
    broker.expect_withdraw_claim()
    assert broker.run("stop", broker.env())[0] == 0
    assert broker.processes.signals == []


# -- monitor ---------------------------------------------------------------------------------


class ManagementApi(FakeHttpServer):
    """A stand-in for the management API on loopback: /api/nodes (``nodes``, read at each
    request) for stackha:secret, 401 for any other credentials."""

    def __init__(self):
        super().__init__(basic_auth=("stackha", "secret"))
        self.nodes = [node_health(m) for m in MEMBERS]
        self.answers["GET", NODES_PATH] = lambda: (
            200,
            {"Content-Type": "application/json"},
            json.dumps(self.nodes),
        )


def node_health(name, running=True, partitions=(), disk_alarm=False):
    return {
        "name": name,
        "running": running,
        "partitions": list(partitions),
        "mem_alarm": False,
        "disk_free_alarm": disk_alarm,
    }


@pytest.fixture
def api(broker):
    served = ManagementApi()
    broker.management_port = served.port
    yield served
    served.close()


def monitor_env(broker, **extra):
    return broker.env(
        OCF_RESKEY_CRM_meta_interval="10000", OCF_RESKEY_CRM_meta_timeout="30000", **extra
    )


def test_monitor_without_a_pid_file_is_not_running(broker):
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 7
    assert reason(err) == ""


def test_monitor_of_a_broker_that_died_says_so(broker):
    broker.pid_file.parent.mkdir()
    broker.pid_file.write_text("4321\n")  # no such process
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 7
    assert reason(err) == f"the broker of rabbit@node1 died (pid file {broker.pid_file})"


def test_a_pid_file_whose_pid_now_names_another_process_is_a_dead_broker(broker):
    broker.running(name="sshd")
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 7
    assert "died" in reason(err)


def test_a_probe_finding_a_stale_pid_file_is_just_not_running(broker):
    broker.pid_file.parent.mkdir()
    broker.pid_file.write_text("4321\n")
    code, err = broker.run("monitor", broker.env(OCF_RESKEY_CRM_meta_interval="0"))
    assert code == 7
    assert reason(err) == ""


def test_monitor_of_a_healthy_member_succeeds(broker, api):
    broker.running()
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 0, err


def test_a_probe_finding_a_healthy_broker_publishes_it(broker, api):
    """Found running after Pacemaker restarted: the peers must know it runs."""
    broker.running()
    broker.expect_publish()
    code, err = broker.run("monitor", broker.env(OCF_RESKEY_CRM_meta_interval="0"))
    assert code == 0, err


def test_a_member_in_a_minority_fails(broker, api):
    api.nodes = [
        node_health("rabbit@node1"),
        node_health("rabbit@node2", running=False),
        node_health("rabbit@node3", running=False),
    ]
    broker.running()
    broker.expect_peers(*((n, f"rabbit@{n}") for n in NODES))  # Pacemaker runs all three
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 1
    assert reason(err) == (
        "rabbit@node1 is in a minority: 1 of 3 members running (rabbit@node1), cut off from "
        "rabbit@node2, rabbit@node3 that Pacemaker runs"
    )


def test_the_first_member_up_after_an_outage_runs_alone_without_failing(broker, api):
    """After an outage of every member the first one up is alone until the others rejoin it:
    the others are down (Pacemaker has not started them), not cut off, and failing the one
    they wait for would stop the recovery (the failure of issue 14)."""
    api.nodes = [
        node_health("rabbit@node1"),
        node_health("rabbit@node2", running=False),
        node_health("rabbit@node3", running=False),
    ]
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"))
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 0, err


def test_a_member_that_sees_a_partition_fails(broker, api):
    api.nodes[0] = node_health("rabbit@node1", partitions=("rabbit@node3",))
    broker.running()
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 1
    assert reason(err) == "rabbit@node1 sees a partition: cut off from rabbit@node3"


def test_a_deep_monitor_fails_when_a_node_pacemaker_runs_is_not_a_member(broker, api):
    broker.running()
    broker.expect_peers(*((n, f"rabbit@{n}") for n in (*NODES, "node9")))
    code, err = broker.run("monitor", monitor_env(broker, OCF_CHECK_LEVEL="10"))
    assert code == 1
    assert reason(err) == (
        "nodes Pacemaker runs RabbitMQ on are not members of this cluster: rabbit@node9"
    )


def test_a_deep_monitor_leaves_a_member_that_is_down_to_its_own_monitor(broker, api):
    api.nodes[2] = node_health("rabbit@node3", running=False)
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"), ("node2", "rabbit@node2"))
    code, err = broker.run("monitor", monitor_env(broker, OCF_CHECK_LEVEL="10"))
    assert code == 0, err


def test_monitor_with_refused_credentials_is_this_nodes_error(broker, api):
    broker.credentials.write_text("username=stackha\npassword=wrong\n")
    broker.running()
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 5  # this node's credentials file: the clone keeps running elsewhere
    assert reason(err) == f"the management API on 127.0.0.1:{api.port} refused user stackha"


def test_without_the_api_a_broker_rabbitmq_runs_on_is_healthy(broker):
    broker.running()
    broker.runner.expect([broker.diagnostics, "-q", "check_running"])
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 0, err


def test_without_the_api_a_broker_rabbitmq_does_not_run_on_is_not_serving(broker):
    broker.running()
    broker.runner.expect(
        [broker.diagnostics, "-q", "check_running"],
        returncode=69,
        stderr="Error: RabbitMQ on node rabbit@node1 is not running or has not fully booted yet",
    )
    code, err = broker.run("monitor", monitor_env(broker))
    assert code == 1
    assert reason(err).startswith(
        "rabbit@node1 is not serving (paused in a minority partition, or its application "
        f"stopped): no management API on 127.0.0.1:{broker.management_port}"
    )


# -- notify: forgetting a fenced node ---------------------------------------------------------


def fenced_history(node, seconds_ago):
    completed = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(time.time() - seconds_ago))
    return (
        '<pacemaker-result api-version="2.25" request="stonith_admin --history">\n'
        '  <fence_history status="0">\n'
        f'    <fence_event status="success" action="reboot" target="{node}" '
        f'client="pacemaker-controld.1203" origin="node1" delegate="node2" '
        f'completed="{completed}"/>\n'
        "  </fence_history>\n"
        '  <status code="0" message="OK"/>\n'
        "</pacemaker-result>\n"
    )


def post_stop_env(broker, node="node1", forget="true", stopped="node3"):
    return broker.env(
        node=node,
        OCF_RESKEY_forget_fenced_nodes=forget,
        OCF_RESKEY_CRM_meta_timeout="60000",
        OCF_RESKEY_CRM_meta_notify_type="post",
        OCF_RESKEY_CRM_meta_notify_operation="stop",
        OCF_RESKEY_CRM_meta_notify_stop_resource="rabbitmq:2",
        OCF_RESKEY_CRM_meta_notify_stop_uname=stopped,
    )


def test_the_first_running_instance_forgets_a_node_fenced_recently(broker):
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"), ("node2", "rabbit@node2"))
    broker.runner.expect(
        [STONITH_ADMIN, "--history", "node3", "--output-as=xml"],
        stdout=fenced_history("node3", seconds_ago=120),
    )
    broker.expect_ctl("forget_cluster_node", "rabbit@node3")
    code, err = broker.run("notify", post_stop_env(broker))
    assert code == 0, err
    assert "forgot rabbit@node3: Pacemaker fenced node3" in err


def test_a_node_fenced_long_ago_is_not_forgotten(broker):
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"), ("node2", "rabbit@node2"))
    broker.runner.expect(
        [STONITH_ADMIN, "--history", "node3", "--output-as=xml"],
        stdout=fenced_history("node3", seconds_ago=3600),
    )
    code, err = broker.run("notify", post_stop_env(broker))
    assert code == 0, err


def test_a_stopped_node_that_was_not_fenced_is_not_forgotten(broker):
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"), ("node2", "rabbit@node2"))
    broker.runner.expect([STONITH_ADMIN, "--history", "node3", "--output-as=xml"], returncode=1)
    code, err = broker.run("notify", post_stop_env(broker))
    assert code == 0, err


def test_fenced_nodes_are_not_forgotten_unless_asked(broker):
    broker.running()
    code, err = broker.run("notify", post_stop_env(broker, forget="false"))
    assert code == 0, err


def test_only_the_first_running_instance_forgets(broker):
    """node2 sees node1 running: node1 acts, node2 does nothing."""
    broker.running()
    broker.expect_peers(("node1", "rabbit@node1"), ("node2", "rabbit@node2"))
    code, err = broker.run("notify", post_stop_env(broker, node="node2"))
    assert code == 0, err


def test_an_instance_whose_broker_is_not_running_does_not_forget(broker):
    code, err = broker.run("notify", post_stop_env(broker))
    assert code == 0, err


def test_notifications_other_than_post_stop_do_nothing(broker):
    broker.running()
    env = post_stop_env(broker)
    env["OCF_RESKEY_CRM_meta_notify_type"] = "pre"
    assert broker.run("notify", env)[0] == 0
    env["OCF_RESKEY_CRM_meta_notify_type"] = "post"
    env["OCF_RESKEY_CRM_meta_notify_operation"] = "start"
    assert broker.run("notify", env)[0] == 0


def test_stop_with_a_user_that_does_not_exist_still_stops_the_broker(broker):
    """Issue 15: `pcs resource update rabbitmq user=nosuchuser` (a mistake) while the broker
    runs. The stop that followed said 0 and left beam.smp running; it must stop it."""
    pid = broker.running()
    env = broker.env(OCF_RESKEY_user="nosuchuser")
    del env["OCF_RESKEY_home"]
    code, err = broker.run("stop", env)
    assert code == 0, err
    assert [(p, s) for p, s, _ in broker.processes.signals] == [(pid, signal.SIGTERM)]


def test_a_probe_with_a_user_that_does_not_exist_does_not_call_a_running_broker_stopped(broker):
    broker.running()
    env = broker.env(OCF_RESKEY_user="nosuchuser", OCF_RESKEY_CRM_meta_interval="0")
    del env["OCF_RESKEY_home"]
    code, err = broker.run("monitor", env)
    assert code == 1, err
    assert reason(err).startswith("runs here (pid 4321) but ")


# -- RabbitMQ 4.x: what each version gets (RabbitMQ's answers faked as 4.0, 4.2 and 4.3 print
# them; the host's real 3.10.8 is tests/integration/test_rabbitmq_one_node.py) --------------

PAUSE_MINORITY = "-rabbit cluster_partition_handling pause_minority"


@pytest.mark.parametrize(
    ("installed", "peer_status", "start_args"),
    [
        pytest.param("3.10.8", cluster_status(MEMBERS, MEMBERS), PAUSE_MINORITY, id="3.10"),
        pytest.param(
            "4.0.5",
            cluster_status(MEMBERS, MEMBERS, "4.0.5", khepri=False),
            PAUSE_MINORITY,
            id="4.0-mnesia",
        ),
        pytest.param(
            "4.2.0", cluster_status(MEMBERS, MEMBERS, "4.2.0", khepri=True), None, id="4.2-khepri"
        ),
        pytest.param(
            "4.3.0", cluster_status(MEMBERS, MEMBERS, "4.3.0", khepri=True), None, id="4.3"
        ),
    ],
)
def test_a_fresh_node_passes_partition_handling_only_where_mnesia_applies_it(
    broker, installed, peer_status, start_args
):
    """A node without data takes its cluster's store: under Khepri (4.2's default, 4.3's only
    store) no cluster_partition_handling is passed; under Mnesia pause_minority, as before."""
    broker.installs(installed)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(stdout=peer_status)
    broker.expect_boot()
    broker.expect_join("rabbit@node2")
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert broker.started_spawn().env.get("RABBITMQ_SERVER_START_ARGS") == start_args


def test_a_khepri_member_after_an_outage_boots_with_its_data_without_claims_or_force_boot(broker):
    """4.2 with khepri_db enabled in its data: Mnesia's files left from before the migration
    name three members, but under Khepri they are not read: no boot claims, no force_boot
    (Khepri has none), and no partition handling; RabbitMQ waits for a Raft majority."""
    broker.installs("4.2.0")
    broker.has_data(MEMBERS, flags=KHEPRI_FLAGS)
    broker.expect_peers()
    broker.expect_boot()
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "boots with its Khepri data; it runs once a majority of its members run" in err
    assert "RABBITMQ_SERVER_START_ARGS" not in broker.started_spawn().env


def test_a_khepri_member_that_finds_no_majority_fails_saying_why(broker):
    """4.3 waits 5 minutes for a Raft leader, past the start's budget."""
    broker.installs("4.3.0")
    broker.has_khepri_data()
    broker.expect_peers()
    broker.expect_ctl(
        "wait",
        "--timeout",
        str(START_S - 10),
        str(broker.pid_file),
        **TIMED_OUT,
    )
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 1
    assert reason(err) == (
        "rabbit@node1 did not boot: boot: timed out waiting for the node to start; under "
        "Khepri a member boots "
        "only with a majority of its members: start RabbitMQ on the others (no force_boot "
        "exists for Khepri)"
    )


def test_a_khepri_member_whose_vm_gave_up_waiting_for_a_leader_boots_again(broker):
    """RabbitMQ 4.0 waits 30 s for a Raft leader, then exits: while the start has time, the
    member decides again (a member may run by now) and boots again."""
    broker.installs("4.0.5")
    broker.has_khepri_data(flags=FLAGS_40 | {"khepri_db"})
    broker.expect_peers()
    broker.expect_ctl(
        "wait",
        "--timeout",
        str(START_S - 10),
        str(broker.pid_file),
        returncode=70,
        stderr="Error: process_not_running",
    )
    broker.expect_peers()
    broker.expect_boot()
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_cluster_wide_setup()
    broker.expect_removed_nodes_check()
    spawn = broker.runner.spawn
    calls = []

    def second_one_runs(spec):
        calls.append(spec)
        pid = spawn(spec)
        if len(calls) == 2:
            broker.running(pid)
        return pid

    broker.runner.spawn = second_one_runs
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "boot given up: rabbit@node1 exited (boot: process_not_running); deciding again" in err
    assert len(broker.runner.spawned) == 2


def test_a_khepri_member_whose_stale_mnesia_files_name_only_itself_rejoins_with_its_data(broker):
    """A 4.2 node that joined a Khepri cluster keeps the cluster_nodes.config it wrote alone
    (Khepri never updates it): read, it would pass for data of another cluster."""
    broker.installs("4.2.0")
    broker.has_data(("rabbit@node1",), flags=KHEPRI_FLAGS)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(
        stdout=cluster_status(MEMBERS, ("rabbit@node2",), "4.2.0", khepri=True)
    )
    broker.expect_boot(rejoining=True)
    broker.expect_publish()
    broker.expect_monitoring_user()
    broker.expect_removed_nodes_check()
    broker.boots()
    code, err = broker.run("start", broker.env())
    assert code == 0, err
    assert "rabbit@node1 rejoined its cluster with its data" in err


def test_mnesia_data_under_4_3_is_refused_before_anything_runs(broker):
    broker.installs("4.3.0")
    broker.has_data(MEMBERS, flags=FLAGS_40 | {"rabbitmq_4.1.0", "rabbitmq_4.2.0"})
    broker.expect_peers()  # none runs
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err) == (
        "the data of rabbit@node1 uses Mnesia (feature flag khepri_db not enabled) and "
        "RabbitMQ 4.3.0 has no Mnesia: upgrade through 4.2 and run rabbitmqctl "
        "enable_feature_flag all there"
    )
    assert broker.runner.spawned == []


def test_data_of_3_10_under_4_0_is_refused_before_anything_runs(broker):
    broker.installs("4.0.5")
    broker.has_data(MEMBERS, flags=FLAGS_310)
    broker.expect_peers()  # none runs
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err).startswith(
        "RabbitMQ 4.0.5 cannot boot the data of rabbit@node1: it upgrades only from 3.13+"
    )
    assert broker.runner.spawned == []


def test_a_node_upgraded_to_4_0_beside_running_3_10_members_names_both_versions(broker):
    """The first node of a rolling upgrade from Debian 12 (seen in the lab): its data is
    3.10's and its peers run 3.10.8. The reason names both versions, first: Pacemaker keeps
    128 characters of it, and the feature flags 3.10's data lacks are the lesser problem."""
    broker.installs("4.0.5")
    broker.has_data(MEMBERS, flags=FLAGS_310)
    broker.expect_peers(("node2", "rabbit@node2"), ("node3", "rabbit@node3"))
    broker.expect_peer_status(stdout=cluster_status(MEMBERS, MEMBERS[1:], "3.10.8"))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err) == (
        "rabbit@node1 runs RabbitMQ 4.0.5, rabbit@node2 3.10.8: RabbitMQ 4.0 clusters only "
        "with 3.13+ (all feature flags on)"
    )
    assert len(reason(err)) <= 128
    assert broker.runner.spawned == []


def test_peers_whose_cli_cannot_answer_are_judged_by_the_version_they_published(broker):
    """In the lab of both releases 4.0.5's rabbitmqctl got no cluster_status from the 3.10.8
    members: the versions the started instances published (rabbitmq-version) name both."""
    broker.installs("4.0.5")
    broker.has_data(MEMBERS, flags=FLAGS_310)
    broker.expect_peers(("node2", "rabbit@node2"), ("node3", "rabbit@node3"))
    for peer in ("rabbit@node2", "rabbit@node3"):
        broker.expect_peer_status(
            peer,
            stdout="",
            returncode=69,
            stderr=f"Error: unable to perform an operation on node '{peer}'",
        )
    broker.expect_published_versions(("node1", "4.0.5"), ("node2", "3.10.8"), ("node3", "3.10.8"))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err) == (
        "rabbit@node1 runs RabbitMQ 4.0.5, rabbit@node2 3.10.8: RabbitMQ 4.0 clusters only "
        "with 3.13+ (all feature flags on)"
    )
    assert broker.runner.spawned == []


def test_a_peer_the_status_gives_no_version_for_is_judged_by_the_one_it_published(broker):
    """cluster_status printed "" for a member that did not answer its CLI: that member's own
    rabbitmq-version says what it runs."""
    broker.installs("4.0.5")
    broker.expect_peers(("node2", "rabbit@node2"), ("node3", "rabbit@node3"))
    status = json.loads(cluster_status(MEMBERS, MEMBERS[1:], "4.0.5", khepri=False))
    status["versions"]["rabbit@node3"] = {"rabbitmq_version": ""}
    broker.expect_peer_status(stdout=json.dumps(status))
    broker.expect_published_versions(("node2", "4.0.5"), ("node3", "3.10.8"))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err) == (
        "rabbit@node1 runs RabbitMQ 4.0.5, rabbit@node3 3.10.8: RabbitMQ 4.0 clusters only "
        "with 3.13+ (all feature flags on)"
    )
    assert broker.runner.spawned == []


def test_a_published_version_of_the_same_series_lets_the_start_go_on(broker):
    """Peers that publish what this node runs are no reason to refuse: the start goes on
    (here to the data's own refusal, which 3.10 data under 4.0 still gets)."""
    broker.installs("4.0.5")
    broker.has_data(MEMBERS, flags=FLAGS_310)
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(stdout="", returncode=69, stderr="Error: unable to connect")
    broker.expect_published_versions(("node2", "4.0.5"), ("node3", "not a version"))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err).startswith("RabbitMQ 4.0.5 cannot boot the data of rabbit@node1")


def test_a_3_10_node_never_joins_a_4_x_cluster_and_says_both_versions(broker):
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(stdout=cluster_status(MEMBERS, MEMBERS[1:], "4.0.5", khepri=False))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert reason(err) == (
        "rabbit@node1 runs RabbitMQ 3.10.8, rabbit@node2 4.0.5: RabbitMQ 4.0 clusters only "
        "with 3.13+ (all feature flags on)"
    )
    assert broker.runner.spawned == []


def test_a_4_3_node_never_joins_a_4_0_cluster(broker):
    broker.installs("4.3.0")
    broker.expect_peers(("node2", "rabbit@node2"))
    broker.expect_peer_status(stdout=cluster_status(MEMBERS, MEMBERS[1:], "4.0.5", khepri=True))
    code, err = broker.run("start", broker.env())
    assert code == 5
    assert "RabbitMQ 4.3 clusters only with 4.2+" in reason(err)


@pytest.mark.parametrize("setting", ["autoheal", "ignore"])
def test_a_minority_that_carries_on_is_refused_on_4_3(broker, setting):
    broker.installs("4.3.0")
    code, err = broker.run("validate-all", broker.env(OCF_RESKEY_partition_handling=setting))
    assert code == 5
    assert reason(err).startswith(
        f"partition_handling={setting} cannot work with RabbitMQ 4.3.0, which has no Mnesia"
    )


def test_pause_minority_on_4_3_is_khepri_s_own_behaviour_and_validates(broker):
    broker.installs("4.3.0")
    code, err = broker.run(
        "validate-all", broker.env(OCF_RESKEY_partition_handling="pause_minority")
    )
    assert code == 0, err


def test_a_classic_mirroring_policy_is_refused_on_4_0(broker):
    broker.installs("4.0.5")
    policies = [{"name": "ha-all", "pattern": ".*", "definition": {"ha-mode": "all"}}]
    code, err = broker.run("validate-all", broker.env(OCF_RESKEY_policies=json.dumps(policies)))
    assert code == 6
    assert reason(err) == (
        "policy 'ha-all': ha-mode (classic queue mirroring) does not exist in RabbitMQ 4.0.5; "
        "use quorum queues"
    )
