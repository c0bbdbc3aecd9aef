"""RabbitMQ knowledge without OCF: what the cluster says of itself, health, policies, and
rabbitmqctl's verbs against a fake runner holding the exact commands."""

import json

import pytest
from fakes import FakeHttpServer
from stackha.clock import Deadline
from stackha.services import rabbitmq
from stackha.services.rabbitmq import NodeHealth, RabbitError

# rabbitmqctl cluster_status --formatter json of RabbitMQ 3.10.8, three nodes (trimmed)
CLUSTER_STATUS = json.dumps(
    {
        "alarms": [],
        "cluster_name": "rabbit@node1",
        "disk_nodes": ["rabbit@node1", "rabbit@node2", "rabbit@node3"],
        "maintenance_status": {"rabbit@node1": "not under maintenance"},
        "partitions": {},
        "ram_nodes": [],
        "running_nodes": ["rabbit@node3", "rabbit@node2", "rabbit@node1"],
    }
)
MEMBERS = ("rabbit@node1", "rabbit@node2", "rabbit@node3")


def test_cluster_status_of_a_whole_cluster():
    status = rabbitmq.parse_cluster_status(CLUSTER_STATUS)
    assert status.members == MEMBERS
    assert sorted(status.running) == list(MEMBERS)
    assert status.partitions == {} and status.alarms == ()


def test_running_nodes_printed_as_one_string_are_split_along_the_members():
    """RabbitMQ 4.1.2-4.1.3 printed them concatenated (rabbitmq-server#14398)."""
    data = json.loads(CLUSTER_STATUS)
    data["running_nodes"] = "rabbit@node2rabbit@node1"
    status = rabbitmq.parse_cluster_status(json.dumps(data))
    assert status.running == ("rabbit@node1", "rabbit@node2")


def test_partitions_and_alarms_are_kept():
    data = json.loads(CLUSTER_STATUS)
    data["partitions"] = {"rabbit@node3": ["rabbit@node1", "rabbit@node2"]}
    data["alarms"] = [{"node": "rabbit@node2", "type": "free_disk_space"}]
    status = rabbitmq.parse_cluster_status(json.dumps(data))
    assert status.partitions == {"rabbit@node3": ("rabbit@node1", "rabbit@node2")}
    assert status.alarms == ("rabbit@node2: free_disk_space",)


def test_garbage_is_a_clear_error():
    with pytest.raises(RabbitError, match="did not print JSON"):
        rabbitmq.parse_cluster_status("Error: unable to perform an operation on node")


# GET /api/nodes?columns=... of the same cluster
NODES = json.dumps(
    [
        {"name": n, "running": True, "partitions": [], "mem_alarm": False, "disk_free_alarm": False}
        for n in MEMBERS
    ]
)


def nodes(**changes):
    data = {n.name: n for n in rabbitmq.parse_nodes(NODES).values()}
    for name, fields in changes.items():
        old = data[f"rabbit@{name}"]
        values = {s: getattr(old, s) for s in NodeHealth.__slots__}
        values.update(fields)
        data[old.name] = NodeHealth(**values)
    return data


def test_a_whole_cluster_is_healthy_at_every_depth():
    assert rabbitmq.judge("rabbit@node1", nodes(), MEMBERS, deep=True) is None


def test_a_partition_seen_from_here_is_a_problem_naming_the_peers():
    problem = rabbitmq.judge(
        "rabbit@node1", nodes(node1={"partitions": ("rabbit@node3",)}), MEMBERS, deep=False
    )
    assert problem.reason == "rabbit@node1 sees a partition: cut off from rabbit@node3"


def test_a_node_in_a_minority_cut_off_from_members_pacemaker_runs_is_a_problem():
    seen = nodes(node2={"running": False}, node3={"running": False})
    problem = rabbitmq.judge("rabbit@node1", seen, MEMBERS, deep=False)
    assert problem.reason.startswith("rabbit@node1 is in a minority: 1 of 3 members running")
    assert problem.reason.endswith("cut off from rabbit@node2, rabbit@node3 that Pacemaker runs")


def test_a_node_in_a_minority_because_the_others_are_down_is_not_a_problem():
    """The first member up after an outage of every member runs alone for a while."""
    seen = nodes(node2={"running": False}, node3={"running": False})
    assert rabbitmq.judge("rabbit@node1", seen, ("rabbit@node1",), deep=False) is None
    assert rabbitmq.judge("rabbit@node1", seen, ("rabbit@node1",), deep=True) is None


def test_the_first_booter_is_a_claim_already_taken_then_the_last_down_then_by_name():
    claim = rabbitmq.BootClaim
    waiting = [claim("waiting", False, "rabbit@b"), claim("waiting", False, "rabbit@a")]
    assert rabbitmq.first_booter(waiting).name == "rabbit@a"
    last = [*waiting, claim("waiting", True, "rabbit@c")]
    assert rabbitmq.first_booter(last).name == "rabbit@c"
    taken = [*last, claim("first", False, "rabbit@d")]
    assert rabbitmq.first_booter(taken).name == "rabbit@d"
    assert rabbitmq.first_booter([]) is None


def test_boot_claims_read_back_what_they_write_and_ignore_anything_else():
    claim = rabbitmq.BootClaim("first", True, "rabbit@node1.example.com")
    assert rabbitmq.parse_boot_claim(claim.value()) == claim
    for junk in ("", "first", "booting:0:rabbit@a", "first:2:rabbit@a", "first:0:nohost"):
        assert rabbitmq.parse_boot_claim(junk) is None


def test_the_last_member_down_is_the_one_its_data_names_alone():
    membership = rabbitmq.Membership(MEMBERS, ("rabbit@node1",))
    assert rabbitmq.is_last_down("rabbit@node1", membership)
    assert not rabbitmq.is_last_down("rabbit@node2", membership)
    assert not rabbitmq.is_last_down("rabbit@node1", rabbitmq.Membership(MEMBERS, MEMBERS))


def test_alarms_matter_only_at_depth_10():
    alarmed = nodes(node1={"disk_alarm": True})
    assert rabbitmq.judge("rabbit@node1", alarmed, MEMBERS, deep=False) is None
    assert rabbitmq.judge("rabbit@node1", alarmed, MEMBERS, deep=True).reason == (
        "rabbit@node1 has a resource alarm: disk"
    )


def test_a_member_that_is_down_is_its_own_monitors_failure_not_this_nodes():
    """Failing here too would restart the healthy nodes along with it."""
    one_down = nodes(node3={"running": False})
    assert rabbitmq.judge("rabbit@node1", one_down, MEMBERS, deep=False) is None
    assert rabbitmq.judge("rabbit@node1", one_down, MEMBERS, deep=True) is None


def test_a_node_pacemaker_runs_that_is_not_a_member_matters_only_at_depth_10():
    expected = (*MEMBERS, "rabbit@node9")
    assert rabbitmq.judge("rabbit@node1", nodes(), expected, deep=False) is None
    assert rabbitmq.judge("rabbit@node1", nodes(), expected, deep=True).reason == (
        "nodes Pacemaker runs RabbitMQ on are not members of this cluster: rabbit@node9"
    )


def test_a_node_the_cluster_does_not_know_is_not_a_member():
    problem = rabbitmq.judge("rabbit@node9", nodes(), MEMBERS, deep=False)
    assert problem.reason == "rabbit@node9 is not a member of the cluster it answers for"


QUORUM = json.dumps(
    [
        {
            "name": "limits",
            "pattern": "^(?!amq\\.).*",
            "definition": {"delivery-limit": 50},
            "apply-to": "quorum_queues",
        }
    ]
)


CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
SET_LIMITS = [
    CTL,
    "set_policy",
    "--vhost",
    "/",
    "--priority",
    "0",
    "--apply-to",
    "quorum_queues",
    "limits",
    "^(?!amq\\.).*",
    '{"delivery-limit":50}',
]


@pytest.fixture
def ctl(fake_runner, fake_clock):
    """rabbitmqctl aimed at a broker, through the fake runner, with a start's budget."""
    return rabbitmq.Rabbitmqctl(
        fake_runner, CTL, {"HOME": "/var/lib/rabbitmq"}, Deadline(fake_clock, 180)
    )


def test_a_policy_not_set_as_wanted_is_set_with_one_set_policy_command(ctl, fake_runner):
    wanted = rabbitmq.parse_policies(QUORUM, (3, 12, 0))
    fake_runner.expect([CTL, "list_policies", "-p", "/", "--formatter", "json"], stdout="[]")
    fake_runner.expect(SET_LIMITS)
    assert rabbitmq.ensure_policies(ctl, wanted) == wanted


def test_a_policy_already_set_as_wanted_is_left_alone(ctl, fake_runner):
    """list_policies prints the definition as a JSON string (3.10) or an object: either way
    the same policy is not set again."""
    wanted = rabbitmq.parse_policies(QUORUM, (3, 12, 0))
    listed = [
        {
            "vhost": "/",
            "name": "limits",
            "pattern": "^(?!amq\\.).*",
            "apply-to": "quorum_queues",
            "definition": '{"delivery-limit": 50}',
            "priority": 0,
        }
    ]
    fake_runner.expect(
        [CTL, "list_policies", "-p", "/", "--formatter", "json"], stdout=json.dumps(listed)
    )
    assert rabbitmq.ensure_policies(ctl, wanted) == []


def test_a_policy_rabbitmq_refuses_is_named_in_the_error(ctl, fake_runner):
    wanted = rabbitmq.parse_policies(QUORUM, (3, 12, 0))
    fake_runner.expect([CTL, "list_policies", "-p", "/", "--formatter", "json"], stdout="[]")
    fake_runner.expect(
        SET_LIMITS, returncode=64, stderr='Error:\nValidation failed\n\n[{<<"delivery-limit">>'
    )
    with pytest.raises(rabbitmq.PolicyRefused, match="policy 'limits' refused by RabbitMQ: "):
        rabbitmq.ensure_policies(ctl, wanted)


def test_missing_vhosts_are_created_with_quorum_queues_their_default(ctl, fake_runner):
    fake_runner.expect([CTL, "list_vhosts", "--formatter", "json"], stdout='[{"name": "/"}]')
    fake_runner.expect([CTL, "add_vhost", "openstack", "--default-queue-type", "quorum"])
    assert rabbitmq.ensure_vhosts(ctl, ["/", "openstack"], (3, 10, 8)) == ["openstack"]


def test_before_3_10_8_a_vhost_is_created_without_a_default_queue_type(ctl, fake_runner):
    """3.10.7's add_vhost has no --default-queue-type: OpenStack's queues become quorum
    queues through oslo.messaging's rabbit_quorum_queue there."""
    fake_runner.expect([CTL, "list_vhosts", "--formatter", "json"], stdout='[{"name": "/"}]')
    fake_runner.expect([CTL, "add_vhost", "openstack"])
    assert rabbitmq.ensure_vhosts(ctl, ["/", "openstack"], (3, 10, 7)) == ["openstack"]


@pytest.mark.parametrize("apply_to", rabbitmq.APPLY_TO_312)
def test_apply_to_a_queue_type_only_from_rabbitmq_3_12(apply_to):
    """3.10 refuses them ("apply-to ... unrecognised"): refused before RabbitMQ sees them."""
    text = json.dumps(
        [{"name": "p", "pattern": ".*", "definition": {"a": 1}, "apply-to": apply_to}]
    )
    assert rabbitmq.parse_policies(text, (3, 12, 0))[0].apply_to == apply_to
    assert rabbitmq.parse_policies(text, (4, 0, 5))[0].apply_to == apply_to
    with pytest.raises(
        RabbitError, match=f"apply-to '{apply_to}' is not one of queues, exchanges, all"
    ):
        rabbitmq.parse_policies(text, (3, 10, 8))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "policies is not JSON"),
        ('{"name": "x"}', "must be a JSON list"),
        ('[{"pattern": ".*", "definition": {"a": 1}}]', "policy 1 has no name"),
        ('[{"name": "p", "pattern": "(", "definition": {"a": 1}}]', "is not a regular expression"),
        ('[{"name": "p", "pattern": ".*", "definition": {}}]', "non-empty JSON object"),
        ('[{"name": "p", "pattern": ".*", "definition": {"a": 1}, "apply-to": "x"}]', "apply-to"),
        ('[{"name": "p", "pattern": ".*", "definition": {"a": 1}, "priority": "1"}]', "priority"),
    ],
)
def test_an_invalid_policy_is_refused_naming_it(text, reason):
    with pytest.raises(RabbitError, match=reason):
        rabbitmq.parse_policies(text, (3, 10, 8))


def test_mirrored_queue_policies_only_where_rabbitmq_still_has_them():
    mirrored = '[{"name": "ha-all", "pattern": ".*", "definition": {"ha-mode": "all"}}]'
    assert rabbitmq.parse_policies(mirrored, (3, 10, 8))[0].definition == {"ha-mode": "all"}
    with pytest.raises(RabbitError, match="does not exist in RabbitMQ 4.0.5; use quorum queues"):
        rabbitmq.parse_policies(mirrored, (4, 0, 5))


def test_versions_and_names():
    assert rabbitmq.parse_version("3.10.8\n") == (3, 10, 8)
    assert rabbitmq.node_name("node1") == "rabbit@node1"
    assert rabbitmq.host_of("rabbit@node1") == "node1"
    with pytest.raises(RabbitError):
        rabbitmq.parse_version("Error")


OPENSTACK = rabbitmq.User(
    "openstack", "/etc/rabbitmq/openstack.password", ("administrator",), {"openstack": (".*",) * 3}
)


def test_a_new_user_gets_its_password_on_stdin_then_its_tags_and_permissions(ctl, fake_runner):
    fake_runner.expect([CTL, "add_user", "openstack"], stdin="openstack-secret\n")
    fake_runner.expect([CTL, "set_user_tags", "openstack", "administrator"])
    fake_runner.expect([CTL, "set_permissions", "-p", "openstack", "openstack", ".*", ".*", ".*"])
    rabbitmq.ensure_user(ctl, OPENSTACK, "openstack-secret")


def test_an_existing_user_whose_password_still_matches_is_not_changed(ctl, fake_runner):
    exists = "Error:\nuser 'openstack' already exists"
    fake_runner.expect(
        [CTL, "add_user", "openstack"], stdin="openstack-secret\n", returncode=70, stderr=exists
    )
    fake_runner.expect([CTL, "authenticate_user", "openstack"], stdin="openstack-secret\n")
    fake_runner.expect([CTL, "set_user_tags", "openstack"])
    rabbitmq.ensure_user(ctl, rabbitmq.User("openstack", "/p"), "openstack-secret")


def test_a_password_that_no_longer_matches_its_file_is_changed(ctl, fake_runner):
    fake_runner.expect(
        [CTL, "add_user", "openstack"], stdin="new-secret\n", returncode=70, stderr="already exists"
    )
    fake_runner.expect(
        [CTL, "authenticate_user", "openstack"],
        stdin="new-secret\n",
        returncode=65,
        stderr="refused",
    )
    fake_runner.expect([CTL, "change_password", "openstack"], stdin="new-secret\n")
    fake_runner.expect([CTL, "set_user_tags", "openstack"])
    rabbitmq.ensure_user(ctl, rabbitmq.User("openstack", "/p"), "new-secret")


def test_a_user_rabbitmq_cannot_add_fails_naming_it(ctl, fake_runner):
    fake_runner.expect(
        [CTL, "add_user", "openstack"], stdin="x\n", returncode=69, stderr="Error:\nnodedown"
    )
    with pytest.raises(rabbitmq.NotReachable, match="add_user openstack: the node is not reach"):
        rabbitmq.ensure_user(ctl, rabbitmq.User("openstack", "/p"), "x")


def test_a_rabbitmqctl_call_that_overruns_is_a_failure_naming_it_not_an_exception(ctl, fake_runner):
    fake_runner.expect(
        [CTL, "-n", "rabbit@node2", "forget_cluster_node", "rabbit@node1"], timed_out=True
    )
    with pytest.raises(RabbitError, match="forget rabbit@node1: .*did not finish"):
        rabbitmq.forget_cluster_node(ctl, "rabbit@node1", node="rabbit@node2")


def test_credentials_come_from_a_file(tmp_path):
    path = tmp_path / "monitor"
    path.write_text("# the agent's monitoring user\nusername=stackha\npassword=p=w\n")
    assert rabbitmq.read_credentials(str(path)) == ("stackha", "p=w")
    path.write_text("username=stackha\n")
    with pytest.raises(rabbitmq.CredentialsError, match="needs username= and password="):
        rabbitmq.read_credentials(str(path))
    with pytest.raises(rabbitmq.CredentialsError, match="No such file"):
        rabbitmq.read_credentials(str(tmp_path / "missing"))


@pytest.fixture
def management_api():
    """A stand-in for the management API on loopback: /api/nodes for user stackha:secret."""
    server = FakeHttpServer(basic_auth=("stackha", "secret"))
    server.answers["GET", rabbitmq.NODES_PATH] = (200, {"Content-Type": "application/json"}, NODES)
    yield server.port, server
    server.close()


def test_fetch_nodes_asks_once_with_basic_auth(management_api):
    port, server = management_api
    health = rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "secret", timeout=5)
    assert sorted(health) == list(MEMBERS)
    assert [path for _, path, _, _ in server.requests] == [rabbitmq.NODES_PATH]


def test_refused_credentials_name_the_user_not_the_password(management_api):
    port, _ = management_api
    with pytest.raises(rabbitmq.CredentialsError) as caught:
        rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "wrong-secret", timeout=5)
    assert "refused user stackha" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


def test_nothing_listening_is_not_reachable():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        rabbitmq.NotReachable, match=f"^no management API on 127.0.0.1:{port}: Connection refused$"
    ):
        rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "secret", timeout=5)


@pytest.mark.parametrize("status", [500, 301])
def test_another_status_is_a_rabbit_error_naming_it(management_api, status):
    """A redirect too: the management API sends none for /api/nodes, and it is not followed."""
    port, server = management_api
    server.answers["GET", rabbitmq.NODES_PATH] = (status, {"Location": "/elsewhere"}, "")
    with pytest.raises(RabbitError) as caught:
        rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "secret", timeout=5)
    assert str(caught.value) == f"the management API on 127.0.0.1:{port} answered {status}"
    assert len(server.requests) == 1


# -- the node's own data: what Mnesia's files say of its cluster ----------------------------


def test_erlang_node_names_are_read_in_order_each_once():
    text = "{[rabbit@node1,rabbit@node2],[rabbit@node1,rabbit@node2]}."
    assert rabbitmq.parse_erlang_nodes(text) == ("rabbit@node1", "rabbit@node2")


def test_quoted_erlang_node_names_with_dots_and_dashes_are_read():
    text = "{['rabbit@node-1.example.com','rabbit@node_2'],[]}."
    assert rabbitmq.parse_erlang_nodes(text) == ("rabbit@node-1.example.com", "rabbit@node_2")


def test_a_node_without_a_data_directory_has_no_membership(tmp_path):
    assert rabbitmq.read_membership(str(tmp_path / "rabbit@node1")) is None


def test_a_node_with_an_empty_data_directory_has_no_membership(tmp_path):
    (tmp_path / "rabbit@node1").mkdir()
    assert rabbitmq.read_membership(str(tmp_path / "rabbit@node1")) is None


def test_membership_and_who_ran_at_shutdown_come_from_the_mnesia_files(tmp_path):
    data = tmp_path / "rabbit@node1"
    data.mkdir()
    (data / "cluster_nodes.config").write_text(
        "{[rabbit@node1,rabbit@node2],[rabbit@node1,rabbit@node2]}.\n"
    )
    (data / "nodes_running_at_shutdown").write_text("[rabbit@node1].\n")
    assert rabbitmq.read_membership(str(data)) == rabbitmq.Membership(
        ("rabbit@node1", "rabbit@node2"), ("rabbit@node1",)
    )


def test_data_whose_files_do_not_say_is_a_membership_with_no_members(tmp_path):
    data = tmp_path / "rabbit@node1"
    data.mkdir()
    (data / "rabbit_durable_queue.DCD").write_text("")
    assert rabbitmq.read_membership(str(data)) == rabbitmq.Membership((), ())


def test_the_data_directory_is_the_node_name_under_the_mnesia_base():
    assert rabbitmq.data_dir("/var/lib/rabbitmq/mnesia/", "rabbit@node1") == (
        "/var/lib/rabbitmq/mnesia/rabbit@node1"
    )


# -- how the broker is run ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "instances", "handling"),
    [
        ("auto", 3, "pause_minority"),
        ("auto", 5, "pause_minority"),
        ("auto", 2, "autoheal"),  # pause_minority would pause both halves
        ("auto", None, None),  # not a clone: nothing to decide
        ("pause_minority", 2, "pause_minority"),
        ("autoheal", 3, "autoheal"),
        ("ignore", 3, "ignore"),
        ("config", 3, None),  # rabbitmq.conf's setting
    ],
)
def test_partition_handling_for_a_setting_and_a_clone_size(setting, instances, handling):
    assert rabbitmq.partition_handling_for(setting, instances) == handling


def test_the_server_environment_names_the_node_and_its_files():
    assert rabbitmq.server_environment(
        "rabbit@node1",
        "/var/lib/rabbitmq",
        "/run/rabbitmq/pid",
        "/var/log/rabbitmq",
        "/var/lib/rabbitmq/mnesia",
    ) == {
        "HOME": "/var/lib/rabbitmq",
        "RABBITMQ_NODENAME": "rabbit@node1",
        "RABBITMQ_PID_FILE": "/run/rabbitmq/pid",
        "RABBITMQ_LOG_BASE": "/var/log/rabbitmq",
        "RABBITMQ_MNESIA_BASE": "/var/lib/rabbitmq/mnesia",
    }


def test_the_server_environment_carries_config_files_and_partition_handling():
    environment = rabbitmq.server_environment(
        "rabbit@node1",
        "/var/lib/rabbitmq",
        "/run/rabbitmq/pid",
        "/var/log/rabbitmq",
        "/var/lib/rabbitmq/mnesia",
        config_file="/etc/rabbitmq/rabbitmq.conf",
        env_file="/etc/rabbitmq/rabbitmq-env.conf",
        partition_handling="pause_minority",
    )
    assert environment["RABBITMQ_CONFIG_FILE"] == "/etc/rabbitmq/rabbitmq.conf"
    assert environment["RABBITMQ_CONF_ENV_FILE"] == "/etc/rabbitmq/rabbitmq-env.conf"
    assert environment["RABBITMQ_SERVER_START_ARGS"] == (
        "-rabbit cluster_partition_handling pause_minority"
    )


# -- what a failed rabbitmqctl said ----------------------------------------------------------

# What RabbitMQ 3.10.8's rabbitmqctl printed here for a node with another cookie (abridged)
COOKIE_REFUSED = """\
Error: unable to perform an operation on node 'rabbit@node2'. Please see diagnostics \
information and suggestions below.

Most common reasons for this are:

 * Target node is unreachable (e.g. due to hostname resolution, TCP connection or firewall issues)
 * CLI tool fails to authenticate with the server (e.g. due to CLI tool's Erlang cookie not \
matching that of the server)
 * Target node is not running

DIAGNOSTICS
===========

attempted to contact: ['rabbit@node2']

rabbit@node2:
  * connected to epmd (port 4369) on node2
  * epmd reports node 'rabbit' uses port 25672 for inter-node and CLI tool traffic
  * TCP connection succeeded but Erlang distribution failed
  * suggestion: check if the Erlang cookie is identical for all server nodes and CLI tools
"""
# Newer CLIs name the refusal
COOKIE_REJECTED = (
    "  * Authentication failed (rejected by the remote node), please check the Erlang cookie\n"
)


@pytest.mark.parametrize("output", [COOKIE_REFUSED, COOKIE_REJECTED])
def test_a_refused_erlang_cookie_is_a_cookie_mismatch(output):
    error = rabbitmq.ctl_failure(output, "join_cluster rabbit@node2")
    assert isinstance(error, rabbitmq.CookieMismatch)
    assert str(error) == "join_cluster rabbit@node2: the Erlang cookie does not match the peer's"


def test_a_node_down_is_not_reachable():
    error = rabbitmq.ctl_failure("Error: {:badrpc, :nodedown}\n", "forget rabbit@node3")
    assert isinstance(error, rabbitmq.NotReachable)
    assert str(error) == "forget rabbit@node3: the node is not reachable ({:badrpc, :nodedown})"


def test_any_other_failure_says_what_follows_error():
    output = (
        "Clustering node rabbit@node1 with rabbit@node2\n"
        "Error: {:corrupt_or_missing_cluster_files, {:error, :enoent}}\n"
    )
    error = rabbitmq.ctl_failure(output, "join_cluster rabbit@node2")
    assert type(error) is RabbitError
    assert str(error) == (
        "join_cluster rabbit@node2: {:corrupt_or_missing_cluster_files, {:error, :enoent}}"
    )


def test_an_error_explained_on_the_next_lines_keeps_the_explanation():
    output = "Error:\nvhost openstack does not exist\n"
    error = rabbitmq.ctl_failure(output, "set_policy")
    assert str(error) == "set_policy: vhost openstack does not exist"


# -- users, vhosts and policies as parameters ------------------------------------------------


def test_users_parse_with_tags_and_permissions():
    text = json.dumps(
        [
            {
                "name": "openstack",
                "password_file": "/etc/rabbitmq/openstack.password",
                "tags": ["administrator"],
                "permissions": {"/": [".*", ".*", ".*"]},
            },
            {"name": "watcher", "password_file": "/etc/rabbitmq/watcher.password"},
        ]
    )
    assert rabbitmq.parse_users(text) == [
        rabbitmq.User(
            "openstack",
            "/etc/rabbitmq/openstack.password",
            ("administrator",),
            {"/": (".*", ".*", ".*")},
        ),
        rabbitmq.User("watcher", "/etc/rabbitmq/watcher.password"),
    ]


def test_no_users_is_an_empty_list():
    assert rabbitmq.parse_users("") == []
    assert rabbitmq.parse_users("[]") == []


def user_entry(**fields):
    entry = {"name": "openstack", "password_file": "/etc/rabbitmq/openstack.password"}
    entry.update(fields)
    return json.dumps([entry])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[", "users is not JSON"),
        ('{"name": "openstack"}', "users must be a JSON list of user objects"),
        ('["openstack"]', "user 1 is not an object with a name"),
        ('[{"password_file": "/p"}]', "user 1 is not an object with a name"),
        (
            user_entry(password_file=None),
            "user 'openstack' needs password_file, an absolute path",
        ),
        (
            user_entry(password_file="openstack.password"),
            "user 'openstack' needs password_file, an absolute path",
        ),
        (user_entry(tags="administrator"), "user 'openstack': tags must be a list of names"),
        (user_entry(tags=[1]), "user 'openstack': tags must be a list of names"),
        (
            user_entry(permissions=[".*", ".*", ".*"]),
            "user 'openstack': permissions must map a vhost to",
        ),
        (
            user_entry(permissions={"/": [".*", ".*"]}),
            "user 'openstack': permissions for '/' must be three patterns",
        ),
        (
            user_entry(permissions={"/": [".*", "(", ".*"]}),
            "user 'openstack': permission '\\(' is not a regular expression",
        ),
    ],
)
def test_an_invalid_user_is_refused_naming_it(text, reason):
    with pytest.raises(RabbitError, match=reason):
        rabbitmq.parse_users(text)


def test_a_password_is_the_first_line_of_its_file(tmp_path):
    path = tmp_path / "openstack.password"
    path.write_text("s3cret with spaces\nignored\n")
    assert rabbitmq.read_password(str(path)) == "s3cret with spaces"


def test_an_empty_password_file_is_refused(tmp_path):
    path = tmp_path / "openstack.password"
    path.write_text("\n")
    with pytest.raises(rabbitmq.CredentialsError, match="password file .* is empty"):
        rabbitmq.read_password(str(path))


def test_a_missing_password_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "missing.password"
    with pytest.raises(rabbitmq.CredentialsError, match=f"password file {path}: No such file"):
        rabbitmq.read_password(str(path))


def test_names_are_read_from_a_json_listing():
    listing = json.dumps([{"name": "/", "tracing": False}, {"name": "openstack"}, {"other": 1}])
    assert rabbitmq.parse_names(listing, "name") == ["/", "openstack"]
    assert rabbitmq.parse_names('[{"user": "guest", "tags": []}]', "user") == ["guest"]
    assert rabbitmq.parse_names("", "name") == []


@pytest.mark.parametrize("text", ["Error: unable to connect", '{"name": "/"}'])
def test_a_listing_that_is_not_a_json_list_is_an_error(text):
    with pytest.raises(RabbitError, match="rabbitmqctl did not print"):
        rabbitmq.parse_names(text, "name")


# list_policies -p / --formatter json of RabbitMQ 3.10.8
POLICY_LISTING = json.dumps(
    [
        {
            "vhost": "/",
            "name": "limits",
            "pattern": "^(?!amq\\.).*",
            "apply-to": "queues",
            "definition": {"delivery-limit": 50, "max-length": 1000},
            "priority": 0,
        }
    ]
)
LIMITS = json.dumps(
    [
        {
            "name": "limits",
            "pattern": "^(?!amq\\.).*",
            "definition": {"max-length": 1000, "delivery-limit": 50},
            "apply-to": "queues",
        }
    ]
)


def test_a_policy_listing_is_keyed_by_name():
    assert rabbitmq.parse_policy_listing(POLICY_LISTING) == {
        "limits": ("^(?!amq\\.).*", "queues", 0, '{"delivery-limit":50,"max-length":1000}')
    }


def test_a_policy_that_is_already_set_compares_equal():
    (wanted,) = rabbitmq.parse_policies(LIMITS, (3, 10, 8))
    current = rabbitmq.parse_policy_listing(POLICY_LISTING)
    assert current["limits"] == rabbitmq.policy_key(wanted)


def test_a_definition_listed_as_a_json_string_compares_equal_too():
    data = json.loads(POLICY_LISTING)
    data[0]["definition"] = json.dumps(data[0]["definition"])
    (wanted,) = rabbitmq.parse_policies(LIMITS, (3, 10, 8))
    assert rabbitmq.parse_policy_listing(json.dumps(data))["limits"] == rabbitmq.policy_key(wanted)


@pytest.mark.parametrize(
    "change",
    [
        {"pattern": ".*"},
        {"apply-to": "all"},
        {"priority": 1},
        {"definition": {"delivery-limit": 20, "max-length": 1000}},
    ],
)
def test_a_policy_that_differs_in_anything_compares_unequal(change):
    data = json.loads(POLICY_LISTING)
    data[0].update(change)
    (wanted,) = rabbitmq.parse_policies(LIMITS, (3, 10, 8))
    assert rabbitmq.parse_policy_listing(json.dumps(data))["limits"] != rabbitmq.policy_key(wanted)


def test_a_policy_listing_that_is_not_json_is_an_error():
    with pytest.raises(RabbitError, match="list_policies did not print JSON"):
        rabbitmq.parse_policy_listing("Error: vhost openstack does not exist")


def test_the_installed_version_comes_from_the_newest_server_directory(tmp_path):
    for name in ("rabbitmq_server-3.9.27", "rabbitmq_server-3.10.8", "rabbitmq_server-x", "other"):
        (tmp_path / name).mkdir()
    assert rabbitmq.installed_version(str(tmp_path)) == (3, 10, 8)
    assert rabbitmq.installed_version(str(tmp_path / "missing")) == rabbitmq.OLDEST_SUPPORTED


# -- RabbitMQ 4.x: versions, the metadata store, what each release accepts ------------------


def ff(name, state):
    """One feature flag as cluster_status and list_feature_flags --formatter json print it."""
    return {"name": name, "state": state, "stability": "stable", "provided_by": "rabbit"}


def status_40(khepri_state="disabled", ram_nodes=True):
    """cluster_status --formatter json of a 4.x cluster of three (trimmed): 4.0 still prints
    ram_nodes, 4.3 no longer does; versions and feature flags as both print them."""
    data = {
        "alarms": [],
        "cluster_name": "rabbit@node1",
        "cluster_tags": [],
        "disk_nodes": list(MEMBERS),
        "running_nodes": ["rabbit@node2", "rabbit@node1"],
        "partitions": {},
        "versions": {
            "rabbit@node1": {"rabbitmq_version": "4.0.5", "erlang_version": "27.2.1"},
            "rabbit@node2": {"rabbitmq_version": "4.0.5", "erlang_version": "27.2.1"},
        },
        "feature_flags": [ff("message_containers", "enabled"), ff("khepri_db", khepri_state)],
    }
    if ram_nodes:
        data["ram_nodes"] = []
    return json.dumps(data)


def test_cluster_status_of_4_0_gives_each_members_version_and_mnesia():
    status = rabbitmq.parse_cluster_status(status_40())
    assert status.members == MEMBERS
    assert status.versions == {"rabbit@node1": (4, 0, 5), "rabbit@node2": (4, 0, 5)}
    assert status.khepri is False


def test_cluster_status_of_a_khepri_cluster_without_ram_nodes_says_khepri():
    status = rabbitmq.parse_cluster_status(status_40("enabled", ram_nodes=False))
    assert status.members == MEMBERS and status.khepri is True


def test_cluster_status_of_3_10_has_no_khepri_flag_and_no_versions_when_trimmed():
    """3.10 lists feature flags without khepri_db (Mnesia); output without any says nothing."""
    data = json.loads(CLUSTER_STATUS)
    assert rabbitmq.parse_cluster_status(CLUSTER_STATUS).khepri is None
    data["feature_flags"] = [ff("quorum_queue", "enabled")]
    data["versions"] = {"rabbit@node1": {"rabbitmq_version": "3.10.8"}, "rabbit@node2": {}}
    status = rabbitmq.parse_cluster_status(json.dumps(data))
    assert status.khepri is False and status.versions == {"rabbit@node1": (3, 10, 8)}


def test_the_server_version_comes_from_the_script_s_real_path(tmp_path):
    """Debian's /usr/lib/rabbitmq/bin/rabbitmq-server links into rabbitmq_server-X.Y.Z."""
    sbin = tmp_path / "lib" / "rabbitmq_server-4.0.5" / "sbin"
    sbin.mkdir(parents=True)
    (sbin / "rabbitmq-server").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "rabbitmq-server").symlink_to(sbin / "rabbitmq-server")
    assert rabbitmq.server_version(str(tmp_path / "bin" / "rabbitmq-server")) == (4, 0, 5)


def test_the_server_version_falls_back_to_the_lib_directory_beside_bin(tmp_path):
    (tmp_path / "lib" / "rabbitmq_server-4.3.0").mkdir(parents=True)
    assert rabbitmq.server_version(str(tmp_path / "bin" / "rabbitmq-server")) == (4, 3, 0)
    elsewhere = str(tmp_path / "nowhere" / "bin" / "rabbitmq-server")
    assert rabbitmq.server_version(elsewhere, str(tmp_path / "lib")) == (4, 3, 0)


def test_feature_flags_are_read_from_the_erlang_list_rabbitmq_writes(tmp_path):
    path = tmp_path / "rabbit@node1-feature_flags"
    path.write_text("[khepri_db,message_containers,\n 'rabbitmq_4.2.0',quorum_queue].\n")
    assert rabbitmq.read_feature_flags(str(path)) == frozenset(
        {"khepri_db", "message_containers", "rabbitmq_4.2.0", "quorum_queue"}
    )
    assert rabbitmq.read_feature_flags(str(tmp_path / "missing")) is None
    assert rabbitmq.feature_flags_file("/var/lib/rabbitmq/mnesia/", "rabbit@node1") == (
        "/var/lib/rabbitmq/mnesia/rabbit@node1-feature_flags"
    )


@pytest.mark.parametrize(
    ("version", "flags", "store"),
    [
        ((3, 10, 8), None, "mnesia"),  # no khepri_db before 3.13
        ((3, 10, 8), {"khepri_db"}, "mnesia"),
        ((4, 0, 5), None, ""),  # no data: the store of the cluster it joins
        ((4, 0, 5), {"quorum_queue"}, "mnesia"),  # opt-in in 4.0 and 4.1
        ((4, 0, 5), {"quorum_queue", "khepri_db"}, "khepri"),
        ((4, 2, 0), None, ""),  # a new cluster gets Khepri, a node joining Mnesia does not
        ((4, 2, 0), {"quorum_queue"}, "mnesia"),  # upgraded from 4.1 without enabling it
        ((4, 3, 0), None, "khepri"),  # no Mnesia at all
        ((4, 3, 0), {"quorum_queue"}, "khepri"),
    ],
)
def test_the_metadata_store_from_the_version_and_the_datas_feature_flags(version, flags, store):
    given = None if flags is None else frozenset(flags)
    assert rabbitmq.metadata_store(version, given) == store


@pytest.mark.parametrize(
    ("mine", "theirs", "refused"),
    [
        ((3, 10, 8), (3, 10, 8), False),
        ((3, 10, 8), (3, 11, 28), False),
        ((3, 13, 7), (4, 0, 5), False),  # the supported upgrade path
        ((4, 0, 5), (4, 2, 0), False),
        ((4, 2, 0), (4, 3, 0), False),
        ((3, 10, 8), (4, 0, 5), True),
        ((4, 0, 5), (3, 12, 14), True),
        ((4, 0, 5), (4, 3, 0), True),  # 4.3 requires 4.2's flags
        ((3, 13, 7), (4, 3, 0), True),
    ],
)
def test_which_versions_can_be_one_cluster(mine, theirs, refused):
    refusal = rabbitmq.cluster_refusal("rabbit@node1", mine, "rabbit@node2", theirs)
    assert bool(refusal) == refused


def test_a_cluster_refusal_names_both_nodes_and_versions_in_one_line():
    refusal = rabbitmq.cluster_refusal("rabbit@node1", (3, 10, 8), "rabbit@node2", (4, 0, 5))
    assert refusal == (
        "rabbit@node1 runs RabbitMQ 3.10.8, rabbit@node2 4.0.5: RabbitMQ 4.0 clusters only "
        "with 3.13+ (all feature flags on)"
    )


def test_mnesia_data_is_refused_by_4_3_naming_the_flag_and_the_way_through_4_2():
    mnesia_42 = frozenset({"message_containers", "stream_filtering", "rabbitmq_4.2.0"})
    refusal = rabbitmq.data_refusal("rabbit@node1", (4, 3, 0), mnesia_42)
    assert refusal == (
        "the data of rabbit@node1 uses Mnesia (feature flag khepri_db not enabled) and "
        "RabbitMQ 4.3.0 has no Mnesia: upgrade through 4.2 and run rabbitmqctl "
        "enable_feature_flag all there"
    )
    assert rabbitmq.data_refusal("rabbit@node1", (4, 2, 0), mnesia_42) is None


def test_data_older_than_3_13_is_refused_by_4_0():
    refusal = rabbitmq.data_refusal("rabbit@node1", (4, 0, 5), frozenset({"quorum_queue"}))
    assert refusal == (
        "RabbitMQ 4.0.5 cannot boot the data of rabbit@node1: it upgrades only from 3.13+ with "
        "all feature flags on (missing: message_containers, stream_filtering)"
    )
    assert rabbitmq.data_refusal("rabbit@node1", (4, 0, 5), None) is None  # no data yet
    assert rabbitmq.data_refusal("rabbit@node1", (3, 10, 8), frozenset()) is None


@pytest.mark.parametrize(
    ("setting", "store", "handling"),
    [
        ("auto", "mnesia", "pause_minority"),
        ("auto", "", "pause_minority"),  # not known yet: Mnesia needs it, Khepri ignores it
        ("auto", "khepri", None),
        ("pause_minority", "khepri", None),
        ("autoheal", "khepri", None),
    ],
)
def test_no_partition_handling_is_passed_under_khepri(setting, store, handling):
    assert rabbitmq.partition_handling_for(setting, 3, store) == handling


def test_autoheal_and_ignore_are_refused_where_khepri_is_the_store():
    refusal = rabbitmq.partition_handling_refusal("autoheal", (4, 3, 0), "khepri")
    assert refusal == (
        "partition_handling=autoheal cannot work with RabbitMQ 4.3.0, which has no Mnesia: "
        "under Khepri a minority of members changes nothing (Raft); set partition_handling=auto"
    )
    assert "this node's Khepri data" in rabbitmq.partition_handling_refusal(
        "ignore", (4, 0, 5), "khepri"
    )
    for setting in ("auto", "pause_minority", "config"):
        assert rabbitmq.partition_handling_refusal(setting, (4, 3, 0), "khepri") is None
    assert rabbitmq.partition_handling_refusal("autoheal", (4, 0, 5), "mnesia") is None


def test_under_khepri_mnesia_s_membership_files_are_not_read(tmp_path):
    """Stale files (a 4.x node that left Mnesia) say nothing of a Khepri cluster."""
    data = tmp_path / "rabbit@node1"
    data.mkdir()
    (data / "cluster_nodes.config").write_text("{[rabbit@node1],[rabbit@node1]}.\n")
    (data / "nodes_running_at_shutdown").write_text("[rabbit@node1].\n")
    assert rabbitmq.read_membership(str(data), mnesia=False) == rabbitmq.Membership((), ())
    assert rabbitmq.read_membership(str(tmp_path / "none"), mnesia=False) is None


@pytest.mark.parametrize(
    ("version", "argv"),
    [
        ((3, 10, 7), ["add_vhost", "openstack"]),  # no --default-queue-type before 3.10.8
        ((3, 10, 8), ["add_vhost", "openstack", "--default-queue-type", "quorum"]),
        ((4, 0, 5), ["add_vhost", "openstack", "--default-queue-type", "quorum"]),
        ((4, 3, 0), ["add_vhost", "openstack", "--default-queue-type", "quorum"]),
    ],
)
def test_a_vhost_the_agent_creates_defaults_to_quorum_queues_where_it_can(version, argv):
    assert rabbitmq.add_vhost_argv("openstack", version) == argv


@pytest.mark.parametrize(
    "key", ["ha-mode", "ha-params", "ha-sync-batch-size", "ha-promote-on-failure"]
)
def test_every_classic_mirroring_key_is_refused_from_4_0(key):
    policy = json.dumps([{"name": "m", "pattern": ".*", "definition": {key: "x"}}])
    with pytest.raises(RabbitError, match=f"{key} \\(classic queue mirroring\\)"):
        rabbitmq.parse_policies(policy, (4, 0, 5))
