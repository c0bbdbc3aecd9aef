"""No confirmed message lost under random faults: a publisher sends to a quorum queue, each
message waiting for its confirm, and a consumer drains it; each round one random fault (kill -9
of a broker, a node crash, a node's power, a partition); after each round the cluster must be
whole again by itself, every confirmed message delivered, and the users and policies still there.

``STACKHA_SOAK_ROUNDS`` rounds (CI runs a short version; ``make soak-rabbitmq ROUNDS=N`` as many
as asked), ``STACKHA_SOAK_SEED`` to replay a run: the seed is printed.
"""

from __future__ import annotations

import os
import random
import time

from lab_helpers import wait_for
from rabbitmq_checks import FAULTS, Traffic, assert_definitions_kept, deploy, wait_healthy
from stackha.lab.rabbitmq import healthy

ROUNDS = int(os.environ.get("STACKHA_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("STACKHA_SOAK_SEED") or time.time_ns() % 1_000_000)


def test_no_confirmed_message_is_lost_across_random_faults(lab):
    print(f"\nsoak: {ROUNDS} rounds, seed {SEED} (STACKHA_SOAK_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    secrets, _ = deploy(lab)
    recoveries = []
    with Traffic(lab, secrets) as traffic:
        for number in range(1, ROUNDS + 1):
            traffic.wait_for_confirms(20)
            fault = rng.choice(FAULTS)
            started = time.monotonic()
            what = fault(lab, rng)
            wait_for(lambda: not healthy(lab, secrets["monitor"]), f"round {number}: noticed", 90)
            wait_healthy(lab, secrets, f"round {number}: {what}")
            seconds = time.monotonic() - started
            recoveries.append(seconds)
            traffic.wait_for_confirms(20)
            wait_for(lambda: not traffic.lost(), f"round {number}: confirmed ids delivered", 120)
            assert_definitions_kept(lab)
            print(
                f"round {number}: {what}; whole after {seconds:.1f}s; "
                f"{len(traffic.confirmed)} confirmed so far, all delivered"
            )
    assert traffic.lost() == []
    print(
        f"soak: {len(traffic.confirmed)} confirmed, none lost, {traffic.reconnects} publisher "
        f"reconnects, worst recovery {max(recoveries):.1f}s, seed {SEED}"
    )
