"""A lab node's power-on self-test: wait, then become the program that boots.

``python -m stackha.lab.post SECONDS -- PROGRAM ARG…`` sleeps SECONDS and then execs PROGRAM in
its own place (same pid, same namespaces, same output). The lab starts a node's corosync and
pacemakerd through it, so that a node powered on through its BMC joins the cluster some seconds
later, as a server does after its POST, and not within a second of the power-on, which no
machine does: the fencer's verification and the node's return then happen in the order real
hardware gives.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        sys.stderr.write("usage: python -m stackha.lab.post SECONDS -- PROGRAM [ARG…]\n")
        return 2
    try:
        seconds = float(args[0])
    except ValueError:
        sys.stderr.write(f"post: {args[0]!r} is not a number of seconds\n")
        return 2
    time.sleep(max(seconds, 0.0))
    program = args[2:]
    os.execv(program[0], program)
    return 1  # not reached: execv replaces this process or raises


if __name__ == "__main__":
    raise SystemExit(main())
