"""RabbitMQ knowledge without OCF: what the cluster says of itself, health, policies."""

import json

import pytest
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


def test_a_node_in_a_minority_is_a_problem():
    seen = nodes(node2={"running": False}, node3={"running": False})
    problem = rabbitmq.judge("rabbit@node1", seen, MEMBERS, deep=False)
    assert problem.reason.startswith("rabbit@node1 is in a minority: 1 of 3 members running")


def test_alarms_and_missing_members_matter_only_at_depth_10():
    alarmed = nodes(node1={"disk_alarm": True})
    assert rabbitmq.judge("rabbit@node1", alarmed, MEMBERS, deep=False) is None
    assert rabbitmq.judge("rabbit@node1", alarmed, MEMBERS, deep=True).reason == (
        "rabbit@node1 has a resource alarm: disk"
    )
    one_down = nodes(node3={"running": False})
    assert rabbitmq.judge("rabbit@node1", one_down, MEMBERS, deep=False) is None
    assert rabbitmq.judge("rabbit@node1", one_down, MEMBERS, deep=True).reason == (
        "members Pacemaker runs are not in the cluster: rabbit@node3"
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


def test_policies_parse_and_become_one_set_policy_command_each():
    (policy,) = rabbitmq.parse_policies(QUORUM, (3, 10, 8))
    assert policy.set_argv() == [
        "/usr/sbin/rabbitmqctl",
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


def test_passwords_go_on_stdin_not_on_the_command_line():
    assert rabbitmq.add_user_argv("openstack") == ["/usr/sbin/rabbitmqctl", "add_user", "openstack"]


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
    import base64
    import http.server
    import threading

    expected = "Basic " + base64.b64encode(b"stackha:secret").decode()
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.end_headers()
                return
            body = NODES.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_fetch_nodes_asks_once_with_basic_auth(management_api):
    port, seen = management_api
    health = rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "secret", timeout=5)
    assert sorted(health) == list(MEMBERS)
    assert seen == [rabbitmq.NODES_PATH]


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
    with pytest.raises(rabbitmq.NotReachable, match=f"no management API on 127.0.0.1:{port}"):
        rabbitmq.fetch_nodes("127.0.0.1", port, "stackha", "secret", timeout=5)
