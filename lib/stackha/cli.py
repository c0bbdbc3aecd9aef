"""The ``stackha`` command."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, TextIO

from stackha import __version__
from stackha.install import DEFAULT_SBIN, InstallError, install, uninstall

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from stackha.runner import Runner

DEFAULT_OCF_ROOT = "/usr/lib/ocf"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackha", description="OpenStack control plane HA on Pacemaker + Corosync."
    )
    parser.add_argument("--version", action="version", version=f"stackha {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ocf_root_help = "OCF root (default: $OCF_ROOT or /usr/lib/ocf)"
    p_install = commands.add_parser(
        "install",
        help="development: install a checkout's agents for Pacemaker (nodes: the Debian package)",
        description=(
            "Install the OCF and fence agents of this checkout, with interpreter lines naming "
            "this Python (a virtualenv), for development and the tests. On cluster nodes, "
            "install the Debian package instead (apt install ./stackha_VERSION_all.deb): "
            "install refuses to overwrite the package's files."
        ),
    )
    p_install.add_argument("--ocf-root", help=ocf_root_help)
    p_install.add_argument(
        "--sbin-dir", default=DEFAULT_SBIN, help=f"where fence agents go ({DEFAULT_SBIN})"
    )
    p_uninstall = commands.add_parser("uninstall", help="remove what install put there")
    p_uninstall.add_argument("--ocf-root", help=ocf_root_help)
    p_docs = commands.add_parser("docs", help="write each agent's docs page")
    p_docs.add_argument("directory", type=Path, help="where to write <agent>.md")
    p_status = commands.add_parser(
        "status", help="the cluster per OpenStack concept: VIPs, APIs, Galera, RabbitMQ, fencing"
    )
    p_status.add_argument("--json", action="store_true", help="as JSON (docs/status.md)")
    _cib_parser(commands)
    _lab_parser(commands)
    return parser


def _cib_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cib = commands.add_parser(
        "cib", help="render, check and apply CIB templates (docs/templates.md)"
    )
    verbs = cib.add_subparsers(dest="verb", required=True, metavar="VERB")
    render = verbs.add_parser("render", help="print the CIB of a site description")
    render.add_argument("site", type=Path, help="the site file (crm-templates/site.example.ini)")
    render.add_argument(
        "--validate-with",
        help="the Pacemaker schema to render for (default: the newest installed here)",
    )
    render.add_argument("-o", "--output", type=Path, help="write it there instead of stdout")
    check = verbs.add_parser(
        "check", help="schema, crm_verify and crm_simulate scenarios (start-up, each node lost)"
    )
    check.add_argument("file", type=Path, help="a CIB (from cib render)")
    apply = verbs.add_parser(
        "apply", help="check a CIB, show the diff against the live cluster's, push it in one go"
    )
    apply.add_argument("file", type=Path, help="a CIB (from cib render)")
    apply.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    apply.add_argument(
        "--cib-file",
        help="apply to this CIB file instead of the live cluster (as CIB_file= or pcs -f)",
    )


LAB_PACKAGE_MISSING = "the lab is in the stackha-lab package: apt install stackha-lab"


def _lab_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    try:
        from stackha.lab.lab import DEFAULT_DIR, DEFAULT_POST_DELAY, DEFAULT_SUBNET
    except ImportError:
        # The Debian package stackha leaves the lab and its simulators out of production nodes
        # (they are in stackha-lab): the command still exists, to say where it is.
        lab = commands.add_parser("lab", help="the namespace lab (package stackha-lab)")
        lab.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        lab.set_defaults(lab_missing=True)
        return
    lab = commands.add_parser("lab", help="a real Pacemaker cluster of namespace nodes")
    lab.add_argument("--dir", default=DEFAULT_DIR, help=f"the lab's directory ({DEFAULT_DIR})")
    verbs = lab.add_subparsers(dest="verb", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="build the lab and wait until every node is online")
    up.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET, help="the lab's private subnet")
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    up.add_argument(
        "--post-delay",
        type=float,
        default=DEFAULT_POST_DELAY,
        metavar="S",
        help=f"seconds from power-on to the cluster daemons (POST; {DEFAULT_POST_DELAY:g})",
    )
    up.add_argument(
        "--deb",
        metavar="FILE",
        help="the stackha package the nodes run (default: built from this checkout)",
    )
    up.add_argument(
        "--release",
        metavar="NAME",
        help="the nodes run this Debian release (bookworm or trixie) from a root filesystem "
        "of its own; default: the host's own files",
    )
    up.add_argument(
        "--profile",
        default="stack",
        metavar="NAME",
        help="with --release: cluster (Pacemaker, fencing, HAProxy) or stack (and the "
        "services; default)",
    )
    status = verbs.add_parser("status", help="nodes, power, membership, resources")
    status.add_argument("--json", action="store_true", help="as JSON")
    run = verbs.add_parser("exec", help="run a command inside a node: exec NODE -- CMD …")
    run.add_argument("node")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    crash = verbs.add_parser("crash", help="everything on a node dies at once")
    crash.add_argument("node")
    power = verbs.add_parser("power", help="power a node on/off/cycle through its BMC")
    power.add_argument("node")
    power.add_argument("action", choices=("on", "off", "cycle", "reset", "status"))
    partition = verbs.add_parser("partition", help="cut nodes off the lab network")
    partition.add_argument("nodes", nargs="+")
    verbs.add_parser("heal", help="restore every node's network")
    reinstall = verbs.add_parser(
        "reinstall",
        help="reinstall a node with another Debian release, keeping its disks (a rolling upgrade)",
    )
    reinstall.add_argument("node")
    reinstall.add_argument("--release", required=True, metavar="NAME", help="bookworm or trixie")
    verbs.add_parser("down", help="remove every namespace, process and file the lab made")
    deploy = verbs.add_parser(
        "deploy",
        help="the OpenStack control plane on the lab: site file, cib render/check/apply, wait",
    )
    deploy.add_argument(
        "--apis",
        default="",
        metavar="NAMES",
        help="the OpenStack API services to deploy, comma- or space-separated (keystone among "
        "them); default: every one stackha has an agent for",
    )
    box = verbs.add_parser(
        "vagrant-box",
        help="build the Vagrant lab's libvirt box of a Debian release, offline (cached)",
    )
    box.add_argument("--release", required=True, metavar="NAME", help="bookworm or trixie")
    box.add_argument(
        "--out",
        default="/var/cache/stackha/boxes",
        metavar="DIR",
        help="where stackha-RELEASE.box goes (/var/cache/stackha/boxes)",
    )
    box.add_argument(
        "--profile",
        default="stack",
        choices=("cluster", "stack"),
        help="the packages of a node of this profile (stack: the services too; default)",
    )
    box.add_argument(
        "--deb",
        metavar="FILE",
        help="the stackha package the box holds, stackha-lab beside it (default: built "
        "from this checkout)",
    )
    vagrant_up = verbs.add_parser(
        "vagrant-up",
        help="the Vagrant lab: libvirtd in namespaces of its own, the box, vagrant up, BMCs",
    )
    vagrant_up.add_argument("--release", default="trixie", help="trixie (default) or bookworm")
    vagrant_up.add_argument("--nodes", type=int, default=3, help="how many VMs (default 3)")
    vagrant_up.add_argument("--subnet", default=DEFAULT_SUBNET, help="the cluster network (/24)")
    vagrant_up.add_argument("--memory", type=int, default=1024, help="MiB per VM (1024)")
    vagrant_up.add_argument("--cpus", type=int, default=1, help="processors per VM (1)")
    vagrant_up.add_argument(
        "--accel", choices=("kvm", "tcg"), help="default: kvm when the processor virtualizes"
    )
    vagrant_up.add_argument(
        "--box-dir",
        default="/var/cache/stackha/boxes",
        metavar="DIR",
        help="where the box is built and cached (/var/cache/stackha/boxes)",
    )
    vagrant_up.add_argument(
        "--profile",
        default="stack",
        choices=("cluster", "stack"),
        help="the box's packages: a node's of this profile (stack: the services too; default)",
    )
    vagrant_up.add_argument(
        "--deb", metavar="FILE", help="the stackha package the box holds (default: built here)"
    )
    verbs.add_parser(
        "vagrant-deploy",
        help="fencing through the VMs' BMCs, the HAProxy clone and the VIP (cib render/apply)",
    )
    verbs.add_parser("vagrant-down", help="remove every VM, network, volume, namespace, process")
    vagrant_exec = verbs.add_parser("vagrant-exec", help="run a command in a VM as root")
    vagrant_exec.add_argument("node")
    vagrant_exec.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    for verb in ("vagrant-up", "vagrant-deploy", "vagrant-down", "vagrant-exec"):
        verbs.choices[verb].add_argument(
            "--lab-dir",
            default="/var/lib/stackha/vagrant-lab",
            metavar="DIR",
            help="the Vagrant lab's state (/var/lib/stackha/vagrant-lab)",
        )
    for verb, what in (("corosync-conf", "corosync.conf"), ("hosts", "/etc/hosts lines")):
        planned = verbs.add_parser(verb, help=f"print the {what} of a lab plan (Vagrant lab)")
        planned.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
        planned.add_argument("--subnet", default=DEFAULT_SUBNET, help="the lab's private subnet")


# The Debian package of each program stackha runs that a node may lack (the stackha package
# only Recommends Pacemaker: a node without it gets one line naming what to install).
PROVIDED_BY = {
    "cibadmin": "pacemaker-cli-utils",
    "crm_attribute": "pacemaker-cli-utils",
    "crm_mon": "pacemaker-cli-utils",
    "crm_resource": "pacemaker-cli-utils",
    "crm_simulate": "pacemaker-cli-utils",
    "crm_verify": "pacemaker-cli-utils",
    "attrd_updater": "pacemaker-cli-utils",
    "stonith_admin": "pacemaker-cli-utils",
    "rabbitmqctl": "rabbitmq-server",
    "mariadb": "mariadb-client",
}


def main(
    argv: Optional[list[str]] = None, out: TextIO = sys.stdout, runner: Optional[Runner] = None
) -> int:
    args = _parser().parse_args(argv)
    from stackha.runner import CommandNotFound

    try:
        return _command(args, out, runner)
    except CommandNotFound as err:
        # A program the command needs is not installed here: say which, and where it comes from.
        program = str(err).split(":", 1)[0]
        package = PROVIDED_BY.get(os.path.basename(program))
        where = f" (apt install {package})" if package else ""
        command = " ".join(str(w) for w in (args.command, getattr(args, "verb", None)) if w)
        sys.stderr.write(f"stackha {command}: error: {err}{where}\n")
        return 1


def _command(args: argparse.Namespace, out: TextIO, runner: Optional[Runner]) -> int:
    if args.command == "status":
        return _status(args, out, runner)
    if args.command == "cib":
        return _cib(args, out, runner)
    ocf_root = getattr(args, "ocf_root", None) or os.environ.get("OCF_ROOT") or DEFAULT_OCF_ROOT
    try:
        if args.command == "install":
            for entry in install(ocf_root, args.sbin_dir):
                out.write(f"installed {entry.path}\n")
        elif args.command == "uninstall":
            removal = uninstall(ocf_root)
            for path in removal.removed:
                out.write(f"removed {path}\n")
            for path in removal.kept:
                out.write(f"kept {path}: changed since it was installed\n")
        elif args.command == "lab":
            if getattr(args, "lab_missing", False):
                sys.stderr.write(f"stackha lab: error: {LAB_PACKAGE_MISSING}\n")
                return 1
            return _lab(args, out)
        elif args.command == "docs":
            from stackha.agents import MODULES as agent_modules
            from stackha.agents import declaration
            from stackha.ocf.docs import render_docs

            args.directory.mkdir(parents=True, exist_ok=True)
            for name in sorted(agent_modules):
                spec = declaration(name).spec
                page = args.directory / f"{spec.name}.md"
                page.write_text(render_docs(spec), encoding="utf-8")
                out.write(f"wrote {page}\n")
    except InstallError as err:
        sys.stderr.write(f"stackha: error: {err}\n")
        return 1
    return 0


def _status(args: argparse.Namespace, out: TextIO, runner: Optional[Runner]) -> int:
    import json

    from stackha.openstack_status import StatusError, as_json, gather, render_text
    from stackha.runner import SubprocessRunner

    try:
        # The uname is this node's Pacemaker name unless corosync.conf names it otherwise.
        status = gather(runner or SubprocessRunner(), local_node=os.uname().nodename)
    except StatusError as err:
        sys.stderr.write(f"stackha status: error: {err}\n")
        return 1
    out.write(json.dumps(as_json(status), indent=1) + "\n" if args.json else render_text(status))
    return 0


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise InstallError(f"cannot read the {what} {path}: {err.strerror}") from None


def _cib(args: argparse.Namespace, out: TextIO, runner: Optional[Runner]) -> int:
    from stackha.cib.apply import ApplyError, apply
    from stackha.cib.check import CheckError, check_cib
    from stackha.cib.render import RenderError, render_cib
    from stackha.cib.site import SiteError, read_site
    from stackha.runner import SubprocessRunner

    runner = runner or SubprocessRunner()
    try:
        if args.verb == "render":
            text = render_cib(
                read_site(_read(args.site, "site file"), str(args.site)), args.validate_with
            )
            if args.output:
                args.output.write_text(text, encoding="utf-8")
            else:
                out.write(text)
            return 0
        text = _read(args.file, "CIB")
        steps = check_cib(text, runner, str(args.file))
        failed = [step for step in steps if not step.ok]
        if args.verb == "check" or failed:
            for step in steps:
                out.write(f"{'ok  ' if step.ok else 'FAIL'}  {step.name}\n")
                for problem in step.problems:
                    out.write(f"      {problem}\n")
                for note in step.notes:
                    out.write(f"      note: {note}\n")
        if failed:
            sys.stderr.write(
                f"stackha cib {args.verb}: {args.file}: {len(failed)} check(s) failed\n"
            )
            return 1
        if args.verb == "apply":
            result = apply(runner, text, dry_run=args.dry_run, out=out, cib_file=args.cib_file)
            if result.changed:  # apply itself says "no changes" otherwise
                out.write("applied\n" if result.pushed else "not applied (--dry-run)\n")
    except SiteError as err:
        sys.stderr.write(f"stackha cib render: {err}\n")
        return 1
    except RenderError as err:
        problems = "\n".join(f"  - {problem}" for problem in err.problems)
        sys.stderr.write(
            f"stackha cib render: {args.site}: {len(err.problems)} problem(s):\n{problems}\n"
        )
        return 1
    except ApplyError as err:
        details = "".join(f"  - {problem}\n" for problem in err.problems)
        sys.stderr.write(f"stackha cib apply: error: {err}\n{details}")
        return 1
    except (CheckError, InstallError) as err:
        sys.stderr.write(f"stackha cib {args.verb}: error: {err}\n")
        return 1
    return 0


def _lab(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from stackha.lab.lab import Lab
    from stackha.lab.namespaces import LabError
    from stackha.process import ProcessError

    def progress(message: str) -> None:
        sys.stderr.write(f"lab: {message}\n")
        sys.stderr.flush()

    lab = Lab(args.dir, progress=progress)
    try:
        if args.verb == "vagrant-box":
            out.write(f"{_vagrant_box(args, progress)}\n")
        elif args.verb.startswith("vagrant-"):
            return _vagrant_lab(args, out, progress)
        elif args.verb in ("corosync-conf", "hosts"):
            from stackha.lab.lab import corosync_conf_for, hosts_for, plan

            nodes = plan(args.nodes, args.subnet)
            out.write(
                corosync_conf_for(nodes) if args.verb == "corosync-conf" else hosts_for(nodes)
            )
        elif args.verb == "up":
            lab.up(
                nodes=args.nodes,
                subnet=args.subnet,
                timeout=args.timeout,
                post_delay=args.post_delay,
                deb=args.deb,
                release_name=args.release,
                profile=args.profile,
            )
            _print_status(lab.status(), out)
        elif args.verb == "status":
            status = lab.status()
            if args.json:
                out.write(json.dumps(status, indent=1) + "\n")
            else:
                _print_status(status, out)
        elif args.verb == "exec":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                raise LabError("exec NODE -- COMMAND: no command given")
            result = lab.node_runner(args.node).run(command, timeout=3600)
            out.write(result.stdout)
            sys.stderr.write(result.stderr)
            return result.returncode
        elif args.verb == "crash":
            lab.crash(args.node)
        elif args.verb == "power":
            command = ["chassis", "power", args.action]
            result = lab.ipmitool(args.node, command)
            out.write(result.stdout)
            if not result.ok:
                raise LabError(f"BMC of {args.node}: {result.output_line()}")
        elif args.verb == "partition":
            lab.partition(args.nodes)
        elif args.verb == "heal":
            lab.heal()
        elif args.verb == "reinstall":
            lab.reinstall(args.node, args.release)
            _print_status(lab.status(), out)
        elif args.verb == "down":
            for name in lab.down():
                out.write(f"removed {name}\n")
        elif args.verb == "deploy":
            from stackha.lab.deploy import api_services, deploy, endpoints_text
            from stackha.lab.package import STACKHA

            apis = api_services(args.apis.replace(",", " ").split())
            # the nodes run the package's stackha, as a cluster node would
            command = STACKHA
            info = deploy(lab, command, apis)
            shown = lab.node_runner("node1").run([command, "status"], timeout=60)
            out.write(shown.stdout)
            out.write(endpoints_text(info))
    # A lab step that waited in vain (process control's wait_until) raises ProcessError
    # where the lab had nothing to add to its reason.
    except (LabError, ProcessError) as err:
        sys.stderr.write(f"stackha lab: error: {err}\n")
        return 1
    return 0


def _vagrant_box(
    args: argparse.Namespace, progress: Callable[[str], None], out_dir: Optional[str] = None
) -> Path:
    import tempfile

    from stackha.lab import package
    from stackha.lab.release import lab_package
    from stackha.lab.vagrant_box import build_box
    from stackha.runner import SubprocessRunner

    runner = SubprocessRunner()
    with tempfile.TemporaryDirectory(prefix="stackha-box-debs.") as built:
        deb = Path(args.deb) if args.deb else package.build(runner, Path(built))
        debs = [deb, lab_package(deb)]
        return build_box(
            runner,
            args.release,
            debs,
            Path(out_dir or args.out),
            log=progress,
            profile=args.profile,
        )


def _vagrant_lab(args: argparse.Namespace, out: TextIO, progress: Callable[[str], None]) -> int:
    from stackha.clock import SystemClock
    from stackha.lab.namespaces import LabError
    from stackha.lab.vagrant_host import acceleration
    from stackha.lab.vagrant_lab import VagrantLab
    from stackha.process import ProcTable
    from stackha.runner import SubprocessRunner

    lab = VagrantLab(
        SubprocessRunner(), ProcTable(), SystemClock(), Path(args.lab_dir), progress=progress
    )
    if args.verb == "vagrant-up":
        accel = args.accel or acceleration()
        box = _vagrant_box(args, progress, out_dir=args.box_dir)
        timings = lab.up(
            box,
            args.release,
            nodes=args.nodes,
            subnet=args.subnet,
            memory_mib=args.memory,
            cpus=args.cpus,
            accel=accel,
        )
        status = lab.cluster_status()
        online = " ".join(status.online_nodes) if status else "-"
        out.write(
            f"Vagrant lab in {args.lab_dir}: {args.nodes} VMs of Debian {args.release} ({accel}),"
            f" online: {online}; {sum(timings.values()):.0f}s\n"
        )
    elif args.verb == "vagrant-deploy":
        vip = lab.deploy()
        shown = lab.vm("node1").run(["crm_mon", "--one-shot"], timeout=120)
        out.write(f"{shown.stdout}VIP {vip}\n")
    elif args.verb == "vagrant-down":
        lab.down()
        out.write(f"removed the Vagrant lab of {args.lab_dir}\n")
    else:
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            raise LabError("vagrant-exec NODE -- COMMAND: no command given")
        result = lab.vm(args.node).run(command, timeout=3600)
        out.write(result.stdout)
        sys.stderr.write(result.stderr)
        return result.returncode
    return 0


def _print_status(status: dict[str, object], out: TextIO) -> None:
    nodes = status["nodes"]
    assert isinstance(nodes, list)
    made_of = status.get("release")
    nodes_run = f"Debian {made_of}" if made_of else "the host's files"
    releases = {n.get("release") or made_of for n in nodes}
    if made_of and releases and made_of not in releases:  # every node reinstalled
        nodes_run = f"Debian {' and '.join(sorted(map(str, releases)))} (made of {made_of})"
    elif made_of and len(releases) > 1:
        nodes_run += " unless their line names another"
    out.write(f"lab in {status['directory']}, subnet {status['subnet']}, nodes run {nodes_run}\n")
    for node in nodes:
        state = "running" if node["running"] else "dead"
        link = "" if node["linked"] or not node["running"] else ", partitioned"
        daemons = " ".join(f"{name}={how}" for name, how in node.get("daemons", {}).items())
        # a node reinstalled with another release than the lab's (stackha lab reinstall)
        other = node.get("release")
        release = f"  Debian {other}" if other and other != status.get("release") else ""
        out.write(
            f"  {node['name']:8} {node['address']:16} power {node['power']:3}  {state}{link}"
            f"  {daemons}{release}  BMC {node['bmc']}:623\n"
        )
    cluster = status["cluster"]
    if not isinstance(cluster, dict):
        out.write("  cluster: no node can tell\n")
        return
    out.write(
        f"  cluster (seen from {cluster['seen_from']}): DC {cluster['dc']}, "
        f"{'quorate' if cluster['quorum'] else 'NO QUORUM'}, "
        f"online: {' '.join(cluster['online'])}\n"
    )
    for resource in cluster["resources"]:
        where = " ".join(resource["nodes"]) or "-"
        failed = " FAILED" if resource["failed"] else ""
        out.write(f"    {resource['id']:24} {resource['role']:10} {where}{failed}\n")


if __name__ == "__main__":
    raise SystemExit(main())
