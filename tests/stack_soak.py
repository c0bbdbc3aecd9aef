"""The whole stack soak (tests/lab/test_openstack_stack.py runs it on its deployment, last):
the whole stack under random faults with fencing on, as ``make lab`` deploys it: nothing
acknowledged is lost and every service comes back on every node by itself.

Three clients run throughout from the lab's network: a writer of acknowledged rows through the
database path, a publisher with confirms and a consumer on a quorum queue, and an API client
(a keystone token and nova's GET /v2.1/flavors through the VIP). Each round is one fault or two
at once (tests/stack_faults.py: every node crashing, one node crashed, a node's power through
its BMC, a partition ending in fencing, kill -9 of a service) and ends only when every clone
instance is started or promoted on every node, the fence devices run, Galera is Synced in one
component of three and RabbitMQ is one cluster — within ``ROUND_TIMEOUT`` seconds, else the
round fails naming what stayed out, with the failed actions and the nodes' log lines. Then
every client must work again, every acknowledged row be on every node and every confirmed
message delivered.

``make check`` runs the short version: every node at once, then a partition ending in fencing.
``STACKHA_SOAK_ROUNDS=N`` draws N rounds at random (``make soak ROUNDS=N``);
``STACKHA_SOAK_SEED`` replays a run: the seed is printed.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from dataclasses import dataclass

from galera_checks import missing_rows
from lab_helpers import wait_for
from stack_clients import (
    AmqpTraffic,
    ApiClient,
    RowWriter,
    create_soak_user,
    max_seconds,
    write_client_defaults,
)
from stack_faults import NODES, SERVICES, Injection, Watch, draw_round, short_plan

ROUNDS_ASKED = os.environ.get("STACKHA_SOAK_ROUNDS", "")
SEED = int(os.environ.get("STACKHA_SOAK_SEED") or time.time_ns() % 1_000_000)
ROUND_TIMEOUT = 600.0  # from the fault until every service is whole again
NOTICE_TIMEOUT = 120.0  # for the cluster to see the fault at all


@dataclass(frozen=True)
class RoundResult:
    number: int
    faults: str
    notes: str
    whole_after: float
    back_after: dict  # {service: seconds from the fault until whole for good, or None}
    writer: str  # its failed requests in the round
    amqp: str
    api: str


def windows(client, since, until):
    """A client's failed requests between ``since`` and ``until``: "0/N" or "F/N A-Bs" (from
    A to B seconds after the fault)."""
    seen = client.outcome(since, until)
    if not seen.failed:
        return f"0/{seen.total}"
    first = max(seen.first_failure, 0.0)
    return f"{seen.failed}/{seen.total} {first:.0f}-{seen.last_failure:.0f}s"


def reasons(client, since, until):
    """The most frequent reasons of a client's failed requests, for the round's line."""
    problems = client.outcome(since, until).problems
    return "; ".join(f"{n}x {p}" for p, n in problems.most_common(2))


def table(results):
    short = {
        "haproxy": "hapx",
        "fencing": "fence",
        "rabbitmq": "rabbit",
        "memcached": "memc",
        "keystone": "keyst",
    }
    heads = ["#", "whole s", *(short.get(s, s) for s in SERVICES), "writer", "amqp", "api"]
    rows = [
        [
            str(r.number),
            f"{r.whole_after:.0f}",
            *("-" if r.back_after[s] is None else f"{r.back_after[s]:.0f}" for s in SERVICES),
            r.writer,
            r.amqp,
            r.api,
        ]
        for r in results
    ]
    widths = [max(len(x) for x in column) for column in zip(heads, *rows)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows]
    lines += [f"{r.number}: {r.faults}" + (f" [{r.notes}]" if r.notes else "") for r in results]
    return "\n".join(lines)


def run_round(number, faults, deployment, writer, traffic, client):
    lab = deployment.lab
    what = " + ".join(str(f) for f in faults)
    print(f"round {number}: {what}", flush=True)
    watch = Watch(lab, deployment.info["rabbitmq_monitor_password"])
    injection = Injection(lab, faults)
    deadline = watch.started + ROUND_TIMEOUT
    shown = watch.started
    while True:
        whole = watch.poll()
        if time.monotonic() - shown >= 60:  # what is still out, for whoever watches a long round
            shown = time.monotonic()
            out = "; ".join(f"{s}: {gap}" for s, gap in watch.last.items() if gap)
            print(f"  {shown - watch.started:.0f}s: {out or 'whole'}", flush=True)
        if injection.errors:
            raise AssertionError(
                f"round {number} ({what}): {injection.errors[0]}\n{watch.report()}"
            )
        if whole and injection.done and watch.noticed:
            break
        now = time.monotonic()
        if injection.done and not watch.noticed and now > watch.started + NOTICE_TIMEOUT:
            raise AssertionError(
                f"round {number} ({what}): the cluster never noticed it\n{watch.report()}"
            )
        if now > deadline:
            raise AssertionError(
                f"round {number} ({what}): not whole within {ROUND_TIMEOUT:.0f}s (seed {SEED}); "
                f"what stayed out:\n{watch.report()}"
            )
        time.sleep(1.0)
    ended = time.monotonic()
    whole_after = ended - watch.started
    # the clients work again, and nothing they were told was done is missing
    writer.wait_for_successes(5, f"round {number}")
    traffic.wait_for_confirms(20)
    client.wait_for_successes(5, f"round {number}")
    acknowledged = list(writer.acknowledged)
    for node in NODES:
        missing = missing_rows(lab, node, acknowledged)
        assert not missing, (
            f"round {number} ({what}): {node} lacks {len(missing)} acknowledged rows, "
            f"e.g. {missing[:5]} (seed {SEED})"
        )
    wait_for(
        lambda: not traffic.lost(),
        f"round {number} ({what}): every confirmed message delivered (seed {SEED})",
        120,
    )
    silence, confirms = traffic.longest_silence(watch.started, ended)
    notes = [
        *injection.notes,
        *(
            f"{e.action} of {e.target} by {e.delegate or '?'}: {e.status}"
            for e in watch.new_fencing()
        ),
        *(
            f"failed {f.op_key} on {f.node}: {f.exit_reason or f.exit_status}"
            for f in watch.new_failures()
        ),
    ]
    why = {
        c.name: reasons(c, watch.started, ended)
        for c in (writer, client)
        if c.outcome(watch.started, ended).failed
    }
    result = RoundResult(
        number,
        what,
        "; ".join(notes),
        whole_after,
        watch.back_after(),
        windows(writer, watch.started, ended),
        f"{silence:.0f}s silent, {confirms} ok",
        windows(client, watch.started, ended),
    )
    back = ", ".join(f"{s} {t:.0f}s" for s, t in result.back_after.items() if t is not None)
    print(
        f"round {number}: whole after {whole_after:.1f}s ({back or 'nothing seen out'}); "
        f"{'; '.join(notes) + '; ' if notes else ''}"
        f"writer {result.writer}, amqp {result.amqp}, api {result.api}; "
        f"{len(acknowledged)} rows acknowledged and {len(traffic.confirmed)} messages "
        "confirmed so far, none lost",
        flush=True,
    )
    for name, text in why.items():
        print(f"  {name} failures: {text}", flush=True)
    return result


def soak(deployment, tmp_path):
    """Run the soak's rounds on ``deployment`` (see the module's text); fails naming the round
    and what stayed out or was lost."""
    rng = random.Random(SEED)
    plan = [draw_round(rng) for _ in range(int(ROUNDS_ASKED))] if ROUNDS_ASKED else short_plan(rng)
    print(
        f"\nstack soak: {len(plan)} rounds, seed {SEED} "
        f"(STACKHA_SOAK_SEED={SEED}{f' STACKHA_SOAK_ROUNDS={ROUNDS_ASKED}' if ROUNDS_ASKED else ''}"
        " replays it)",
        flush=True,
    )
    lab = deployment.lab
    password = secrets.token_hex(16)
    create_soak_user(lab, password)
    defaults = tmp_path / "soak-client.cnf"
    write_client_defaults(defaults, password)
    limit = max_seconds(len(plan), ROUND_TIMEOUT)
    results = []
    writer = RowWriter(deployment, str(defaults), int(limit * 20), limit)
    traffic = AmqpTraffic(deployment, int(limit * 1000), limit)
    client = ApiClient(deployment, int(limit * 10), limit)
    with writer, traffic, client:
        try:
            for number, faults in enumerate(plan, 1):
                results.append(run_round(number, faults, deployment, writer, traffic, client))
        finally:
            print(f"\nstack soak, seed {SEED}:\n{table(results)}", flush=True)
    assert traffic.lost() == []
    print(
        f"stack soak: {len(writer.acknowledged)} rows acknowledged, {len(traffic.confirmed)} "
        f"messages confirmed, none lost; {traffic.reconnects} publisher reconnects; worst "
        f"round {max(r.whole_after for r in results):.0f}s; seed {SEED}"
    )
