"""No lost writes under random faults: a writer commits rows continuously; each round one random
fault (kill -9 of one or every mariadbd, a node crash, the whole lab's power, a partition);
after each round the cluster must be all Promoted again by itself and every acknowledged row on
every node.

``STACKHA_SOAK_ROUNDS`` rounds (CI runs a short version; ``make soak ROUNDS=N`` as many as asked),
``STACKHA_SOAK_SEED`` to replay a run: the seed is printed.
"""

from __future__ import annotations

import os
import random
import time

from galera_checks import (
    FAULTS,
    Writer,
    assert_no_lost_writes,
    deploy,
    wait_all_promoted,
)
from lab_helpers import wait_for
from stackha.lab.galera import healthy

ROUNDS = int(os.environ.get("STACKHA_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("STACKHA_SOAK_SEED") or time.time_ns() % 1_000_000)


def test_no_acknowledged_write_is_lost_across_random_faults(lab):
    print(f"\nsoak: {ROUNDS} rounds, seed {SEED} (STACKHA_SOAK_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    deploy(lab)
    recoveries = []
    with Writer(lab) as writer:
        for number in range(1, ROUNDS + 1):
            writer.wait_for_commits(5)
            fault = rng.choice(FAULTS)
            started = time.monotonic()
            what = fault(lab, rng)
            wait_for(lambda: not healthy(lab), f"round {number}: the cluster noticing", 90)
            wait_all_promoted(lab, f"round {number}: {what}")
            seconds = time.monotonic() - started
            recoveries.append(seconds)
            writer.wait_for_commits(5)
            assert_no_lost_writes(lab, writer)
            print(
                f"round {number}: {what}; all Promoted after {seconds:.1f}s; "
                f"{len(writer.acknowledged)} rows acknowledged so far, all on every node"
            )
    assert_no_lost_writes(lab, writer)
    print(f"soak: worst recovery {max(recoveries):.1f}s, seed {SEED}")
