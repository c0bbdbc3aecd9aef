"""What the fuzz tier feeds the agents, and the fakes and witnesses around each run.

Values are the issue 15 classes: empty, 100 KB, newlines, bytes that are not UTF-8 (as Python
decodes an environment of bytes: ``os.environ`` keeps each such byte as a lone surrogate),
shell metacharacters, path traversal, bad numbers and booleans. Paths always point inside the
run's own directory, at decoy files the run must leave as they were.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from hypothesis import strategies as st
from stackha.process import ProcTable
from stackha.runner import CommandError, Result

# How many generated cases ran (conftest prints it at the end of the session).
CASES = {"count": 0}

HUGE = 100_000
SECRET = "fuzz-S3cret-pw"  # the password in every credentials file and password_script


def counted() -> None:
    CASES["count"] += 1


def surrogate_escaped(data: bytes) -> str:
    """``data`` as ``os.environ`` shows an environment of bytes."""
    return data.decode("utf-8", "surrogateescape")


# -- values ------------------------------------------------------------------------------------

NON_UTF8 = st.binary(min_size=1, max_size=12).map(
    lambda data: surrogate_escaped(b"\xff" + data + b"\xfe")
)
NUMBER_LIKE = st.sampled_from(
    [
        "0",
        "-1",
        "1_0",
        " 7 ",
        "+7",
        "7.0",
        "0x10",
        "٣",
        "9" * 30,
        "nan",
        "inf",
        "1e999",
        "-0",
        "65536",
        "70000",
        "2147483648",
        "00012",
        "1" * 19,
    ]
)
BOOLEAN_LIKE = st.sampled_from(
    ["true", "false", "yes", "no", "1", "0", "TRUE", "maybe", "on", "offf", " true", "y"]
)
SHELL = st.sampled_from(
    [
        "$(touch pwned)",
        "`id`",
        "; rm -rf /tmp/nothing",
        "a|b",
        "a&&b",
        "'\"",
        "${IFS}",
        "a b",
        "-rf",
        "--help",
        "*",
        "~root",
        "\\",
        "%s%n",
        "{}",
        "[",
        '{"a": [',
        "]]]]",
    ]
)
CONTROL = st.sampled_from(
    ["a\nERROR: forged", "a\rb", "\x00", "\x1b[2J", "a\u2028b", "\t", "\n", "ocf-exit-reason:x"]
)
TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40
)


def huge(char: str = "x") -> st.SearchStrategy[str]:
    return st.sampled_from([char * HUGE, char * 4097, "[" * HUGE, "9" * HUGE])


def any_value(paths: list[str]) -> st.SearchStrategy[str]:
    """A hostile value for any parameter; ``paths`` are paths into the run's directory."""
    return st.one_of(
        st.just(""),
        NUMBER_LIKE,
        BOOLEAN_LIKE,
        SHELL,
        CONTROL,
        NON_UTF8,
        TEXT,
        huge(),
        st.sampled_from(paths),
    )


# -- the run's directory and its decoys --------------------------------------------------------

DECOYS = {
    "text": b"important text, not a pid\n",
    "pid-and-more": b"4242\nimportant\n",
    "big-pid": b"99999999999999999999\n",
    "empty-looking": b" \n",
    "header-lookalike": b"# not written by stackha\nlisten = 1\n",
}


def make_run_dir(root: Path) -> dict[str, str]:
    """Decoys (files, a directory holding one, a link to one, a FIFO) and the agent's own
    temporary area under ``root``; returns named paths for the strategies."""
    decoys = root / "decoys"
    (decoys / "dir").mkdir(parents=True)
    for name, data in DECOYS.items():
        (decoys / name).write_bytes(data)
    (decoys / "dir" / "inside").write_bytes(b"inside a directory\n")
    (decoys / "link").symlink_to(decoys / "text")
    os.mkfifo(decoys / "fifo")
    (root / "area").mkdir()
    (root / "rsctmp").mkdir()
    (root / "cwd" / "a" / "b").mkdir(parents=True)
    return {
        "root": str(root),
        "decoys": str(decoys),
        "area": str(root / "area"),
        "rsctmp": str(root / "rsctmp"),
        "cwd": str(root / "cwd" / "a" / "b"),
    }


def decoy_paths(run: dict[str, str]) -> list[str]:
    """Paths a hostile parameter may name: each decoy, by traversal too, and long names."""
    decoys = run["decoys"]
    names = [*DECOYS, "dir", "dir/inside", "link", "fifo"]
    return [
        *(f"{decoys}/{name}" for name in names),
        f"{run['area']}/../decoys/text",
        f"{run['area']}/x/../../decoys/pid-and-more",
        "../../../decoys/text",  # relative to the run's working directory
        "../../../decoys",
        f"{decoys}/text/below-a-file",
        f"{decoys}/" + "n" * 300,
        f"{decoys}/" + "d/" * 2100 + "f",
        f"{decoys}/dir/",
        f"{decoys}//./text",
    ]


def snapshot(directory: str) -> dict[str, tuple]:
    """Every entry under ``directory``: its type, mode, size, mtime, content digest, target."""
    seen: dict[str, tuple] = {}
    for path in sorted(Path(directory).rglob("*")):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            digest = os.readlink(path)
        else:
            digest = ""
        seen[str(path)] = (
            stat.S_IFMT(info.st_mode),
            stat.S_IMODE(info.st_mode),
            info.st_uid,
            info.st_size if not stat.S_ISDIR(info.st_mode) else 0,
            info.st_mtime_ns if not stat.S_ISDIR(info.st_mode) else 0,
            digest,
        )
    return seen


def changed_decoys(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Decoys removed or changed (new files beside them are a parameter's to create)."""
    return [path for path, entry in before.items() if after.get(path) != entry]


# -- fakes at the runner boundary; a guard at the signal boundary ------------------------------


class FailingRunner:
    """Every command fails, as on a node where none of the service's tools works; nothing is
    spawned. Commands are recorded so a test can look for secrets on a command line."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []

    def run(self, argv, *, timeout, stdin=None, env=None, check=False):
        assert timeout > 0, f"no time budget for {argv}"
        self.commands.append(tuple(argv))
        result = Result(tuple(argv), 1, "", "fuzz: this command fails")
        if check:
            raise CommandError(f"{argv[0]} failed (exit 1): fuzz: this command fails", result)
        return result

    def spawn(self, spec):
        self.commands.append(tuple(spec.argv))
        raise CommandError(f"cannot run {spec.argv[0]}: fuzz: nothing is spawned")


class GuardedProcTable(ProcTable):
    """The real process table, except that a signal reaches only the processes the test
    started (``allowed``): this machine may run a lab whose daemons a fuzzed stop must never
    touch. Any other signal is recorded in ``refused`` — a test fails on it — and not sent."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: set[int] = set()
        self.refused: list[tuple[int, int]] = []

    def signal(self, pid: int, signum: int) -> None:
        if pid in self.allowed:
            super().signal(pid, signum)
        else:
            self.refused.append((pid, signum))


GUARD = GuardedProcTable()
