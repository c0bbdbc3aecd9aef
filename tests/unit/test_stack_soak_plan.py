"""The whole-stack soak's rounds as drawn from a seed (tests/stack_faults.py)."""

from __future__ import annotations

import random

from stack_faults import (
    EVERY_NODE,
    KILL,
    KILLERS,
    KINDS,
    NODE_FAULTS,
    NODES,
    PARTITION,
    TWO,
    draw_round,
    short_plan,
)


def nodes_taken_out(faults):
    out = set()
    for fault in faults:
        if fault.kind == EVERY_NODE:
            out |= set(NODES)
        elif fault.kind in NODE_FAULTS:
            out.add(fault.node)
    return out


def test_a_seed_replays_the_same_rounds():
    first = [draw_round(random.Random(42)) for _ in range(30)]
    again = [draw_round(random.Random(42)) for _ in range(30)]
    assert first == again


def test_two_faults_at_once_leave_a_quorum_and_are_never_the_same():
    rounds = [draw_round(random.Random(seed)) for seed in range(2000)]
    pairs = [r for r in rounds if len(r) == 2]
    assert pairs, "no round of two faults in 2000 draws"
    for first, second in pairs:
        assert first != second
        assert second.kind == KILL and second.service in KILLERS
        assert len(nodes_taken_out((first, second))) <= 1, (first, second)


def test_every_kind_of_fault_is_drawn():
    rng = random.Random(7)
    drawn = set()
    for _ in range(300):
        faults = draw_round(rng)
        drawn.add(TWO if len(faults) == 2 else faults[0].kind)
    assert drawn == set(KINDS)


def test_the_short_version_covers_every_node_at_once_and_a_partition():
    plan = short_plan(random.Random(1))
    assert [[f.kind for f in faults] for faults in plan] == [[EVERY_NODE], [PARTITION]]
    assert plan[1][0].node in NODES
