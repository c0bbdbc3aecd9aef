"""The ``stackha`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, TextIO

from stackha import __version__
from stackha.install import (
    InstallError,
    agent_files,
    install,
    load_agent_module,
    uninstall,
)

DEFAULT_OCF_ROOT = "/usr/lib/ocf"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackha", description="OpenStack control plane HA on Pacemaker + Corosync."
    )
    parser.add_argument("--version", action="version", version=f"stackha {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ocf_root_help = "OCF root (default: $OCF_ROOT or /usr/lib/ocf)"
    p_install = commands.add_parser("install", help="install the agents for Pacemaker")
    p_install.add_argument("--ocf-root", help=ocf_root_help)
    p_uninstall = commands.add_parser("uninstall", help="remove what install put there")
    p_uninstall.add_argument("--ocf-root", help=ocf_root_help)
    p_docs = commands.add_parser("docs", help="write each agent's docs page")
    p_docs.add_argument("directory", type=Path, help="where to write <agent>.md")
    return parser


def main(argv: Optional[list[str]] = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    ocf_root = getattr(args, "ocf_root", None) or os.environ.get("OCF_ROOT") or DEFAULT_OCF_ROOT
    try:
        if args.command == "install":
            for entry in install(ocf_root):
                out.write(f"installed {entry.path}\n")
        elif args.command == "uninstall":
            removal = uninstall(ocf_root)
            for path in removal.removed:
                out.write(f"removed {path}\n")
            for path in removal.kept:
                out.write(f"kept {path}: changed since it was installed\n")
        elif args.command == "docs":
            from stackha.ocf.docs import render_docs

            args.directory.mkdir(parents=True, exist_ok=True)
            for source in agent_files():
                spec = load_agent_module(source).AGENT.spec
                page = args.directory / f"{spec.name}.md"
                page.write_text(render_docs(spec), encoding="utf-8")
                out.write(f"wrote {page}\n")
    except InstallError as err:
        sys.stderr.write(f"stackha: error: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
