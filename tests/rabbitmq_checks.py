"""What the RabbitMQ lab tests and the soak share: the clone deployed as an operator would, AMQP
traffic with publisher confirms through the lab's network, the no-lost-messages check, the
definitions check, and the faults."""

from __future__ import annotations

import ctypes
import json
import os
import threading
import time

from amqp_client import AmqpError, Connection
from lab_helpers import fault_crash_node, fault_power_cycle_node, pcs, settle, wait_for
from lab_helpers import fault_partition as lab_fault_partition
from stackha.lab import rabbitmq as lab_rabbitmq
from stackha.lab.rabbitmq import NODES, healthy, kill_broker

QUEUE = "soak"
CLONE_NEW_NET = 0x40000000


def wait_healthy(lab, secrets, what, timeout=300):
    """Seconds until every node sees every member running, with no partition, and Pacemaker
    has nothing left to do (a recovery in flight would end the state just seen)."""
    started = time.monotonic()
    wanted = f"RabbitMQ whole again ({what})"
    wait_for(lambda: healthy(lab, secrets["monitor"]), wanted, timeout)
    settle(lab, timeout=round(max(timeout - (time.monotonic() - started), 10.0)))
    wait_for(lambda: healthy(lab, secrets["monitor"]), f"{wanted}, once Pacemaker settled", 120)
    return time.monotonic() - started


def deploy(lab):
    """RabbitMQ provisioned on every node and run by Pacemaker as the operator would create
    it, fencing off; returns (secrets, seconds from create to a whole cluster)."""
    secrets = lab_rabbitmq.provision(lab)
    pcs(lab, "property", "set", "stonith-enabled=false")
    # as stackha's cluster-properties.xml sets it (docs/rabbitmq.md says why)
    pcs(lab, "property", "set", "start-failure-is-fatal=false")
    started = time.monotonic()
    pcs(
        lab, "resource", "create", "rabbitmq", "ocf:stackha:rabbitmq", *lab_rabbitmq.clone_options()
    )
    wait_healthy(lab, secrets, "cold start")
    return secrets, time.monotonic() - started


def definitions(lab, node="node1"):
    """(users, policies) the cluster has, asked on ``node``."""

    def listing(*argv):
        result = lab.node_runner(node).run(
            ["/usr/sbin/rabbitmqctl", *argv, "--formatter", "json"], timeout=60
        )
        assert result.ok, f"{node}: rabbitmqctl {' '.join(argv)}: {result.output_line()}"
        return json.loads(result.stdout)

    users = sorted(u["user"] for u in listing("list_users"))
    policies = sorted(p["name"] for p in listing("list_policies"))
    return users, policies


def assert_definitions_kept(lab, node="node1"):
    users, policies = definitions(lab, node)
    assert {"openstack", "stackha-monitor"} <= set(users), users
    assert policies == ["openstack-limits"], policies


def _enter_network_of(pid):
    """Move the calling thread into the network namespace of ``pid``: a network namespace is
    per thread, so the test process talks to the lab from there without a process of its own."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEW_NET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
    finally:
        os.close(fd)


class Traffic:
    """A publisher (one message at a time, each waiting for its confirm) and a consumer, both
    on the quorum queue ``soak``, moving to the next node whenever theirs fails. ``confirmed``
    holds every id the broker confirmed, ``delivered`` every id the consumer received."""

    def __init__(self, lab, secrets):
        self.addresses = [n.address for n in lab.load().nodes]
        self.password = secrets["openstack"]
        self.switch_pid = lab.load().switch_init_pid
        self.confirmed: list[int] = []
        self.delivered: set[int] = set()
        self.reconnects = 0
        self._next = int(time.time() * 1000) * 1000  # ids never repeat across tests
        self._stop_publishing = threading.Event()
        self._stop_consuming = threading.Event()
        self._threads = [
            threading.Thread(target=self._in_lab, args=(self._publish,), daemon=True),
            threading.Thread(target=self._in_lab, args=(self._consume,), daemon=True),
        ]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop_publishing.set()
        self._threads[0].join(timeout=30)
        if exc[0] is None:
            # let the consumer drain what was confirmed before it stops
            wait_for(lambda: not self.lost(), "the consumer receiving every confirmed id", 180)
        self._stop_consuming.set()
        self._threads[1].join(timeout=30)

    def lost(self):
        return sorted(set(self.confirmed) - self.delivered)

    def wait_for_confirms(self, count, timeout=120):
        target = len(self.confirmed) + count
        wait_for(lambda: len(self.confirmed) >= target, f"{count} more confirms", timeout)

    def _in_lab(self, work):
        _enter_network_of(self.switch_pid)
        work()

    def _connect(self, turn):
        address = self.addresses[turn % len(self.addresses)]
        # heartbeats: a consumer on a node cut off by a partition would otherwise wait forever
        connection = Connection(
            address, lab_rabbitmq.AMQP_PORT, "openstack", self.password, heartbeat=5
        )
        channel = connection.channel()
        channel.queue_declare(QUEUE)
        return connection, channel

    def _publish(self):
        turn = 0
        while not self._stop_publishing.is_set():
            try:
                connection, channel = self._connect(turn)
            except (AmqpError, OSError):
                turn += 1
                self._stop_publishing.wait(0.2)
                continue
            try:
                channel.confirm_select()
                while not self._stop_publishing.is_set():
                    self._next += 1
                    message = self._next
                    tag = channel.publish(QUEUE, str(message).encode())
                    deadline = time.monotonic() + 5.0
                    while time.monotonic() < deadline:
                        acked, nacked = channel.wait_confirms(deadline - time.monotonic())
                        if tag in acked:
                            self.confirmed.append(message)
                            break
                        if tag in nacked:
                            raise AmqpError(f"nack for {message}")
                    else:
                        raise AmqpError(f"no confirm for {message}")
            except (AmqpError, OSError):
                self.reconnects += 1
                turn += 1
            finally:
                connection.close(timeout=1)

    def _consume(self):
        turn = 0
        while not self._stop_consuming.is_set():
            try:
                connection, channel = self._connect(turn)
                channel.qos(100)
                channel.consume(QUEUE)
            except (AmqpError, OSError):
                turn += 1
                self._stop_consuming.wait(0.2)
                continue
            try:
                while not self._stop_consuming.is_set():
                    delivery = channel.next_delivery(0.5)
                    if delivery is None:
                        continue
                    tag, body = delivery
                    self.delivered.add(int(body))
                    channel.ack(tag)
            except (AmqpError, OSError, ValueError):
                turn += 1
            finally:
                connection.close(timeout=1)


# -- faults: each returns what it did ------------------------------------------------------


def fault_kill_one(lab, rng):
    node = rng.choice(NODES)
    kill_broker(lab, node)
    return f"kill -9 of {node}'s broker"


def fault_partition(lab, rng):
    # pause_minority needs net_ticktime (10 s here) and more to notice: a longer cut
    return lab_fault_partition(lab, rng, seconds=(15, 25))


FAULTS = (fault_kill_one, fault_crash_node, fault_power_cycle_node, fault_partition)
