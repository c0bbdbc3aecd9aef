"""The fuzz tier's hypothesis profiles, and a count of the cases it generated.

``ci`` (the default, what ``make check`` runs): a fixed number of examples per test,
derandomized so that every run tries the same cases, no deadline (a 2-core machine under load
is slow, not wrong). ``long`` (``make fuzz``, ``HYPOTHESIS_PROFILE=long``): many more examples,
random, with the seed printed so that a failure can be replayed (``--hypothesis-seed=N``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

# Examples per test: the stand-in tests start a process per example, so they run fewer.
CI_EXAMPLES = 20
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=SLOW_IS_FINE,
)
settings.register_profile(
    "long",
    max_examples=CI_EXAMPLES * 25,
    deadline=None,
    print_blob=True,
    suppress_health_check=SLOW_IS_FINE,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_report_header(config):
    return f"hypothesis profile: {settings.get_current_profile_name()}"


def pytest_terminal_summary(terminalreporter):
    from hostile import CASES

    if CASES["count"]:
        terminalreporter.write_line(f"fuzz: {CASES['count']} generated cases ran")
