"""ocf:stackha:memcached — memcached, the cache of keystone's tokens (oslo.cache), on every
controller.

OCF glue only: what each action means for memcached. The workload knowledge (its command line,
what a healthy one answers) is in stackha.services.memcached.

Why an agent of our own: resource-agents ships no memcached agent, and what the OpenStack HA
Guide and TripleO run, ``systemd:memcached``, needs systemd as the node's init (the namespace
lab's nodes have none) and its monitor only asks systemd whether the unit is active, not whether
memcached answers. No VIP and no HAProxy in front of it (the HA Guide: "Access to Memcached is
not handled by HAProxy"): every service lists every node's memcached and spreads its keys over
them, so memcached is a plain clone, one instance per node, each on its node's own address.
"""

from __future__ import annotations

import os

from stackha import __version__
from stackha.agents.node_address import bind_address
from stackha.ocf.agent import Agent, Call
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import GenericError, NotConfigured, NotInstalled, NotRunning, OcfStatus
from stackha.process import (
    ProcessError,
    ProcTable,
    find_instance,
    is_alive,
    remove_stale_pidfile,
    running_pid,
    start_daemon,
    stop_all,
    stop_process,
    wait_until,
)
from stackha.services import memcached

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from typing import Optional

    from stackha.ocf.budget import CheckBudget

SPEC = AgentSpec(
    name="memcached",
    version=__version__,
    shortdesc="memcached, the OpenStack services' cache (oslo.cache), on every node",
    longdesc=(
        "Runs memcached in the foreground under the agent's own pid file, bound to this "
        "node's address, as a clone: every OpenStack service lists every node's memcached "
        "(keystone's token cache, oslo.cache's memcache_pool) and spreads its keys over them "
        "itself, so no VIP and no HAProxy stand in front of it (the OpenStack HA Guide: "
        "access to memcached is not handled by HAProxy). Why an agent of stackha's own: "
        "resource-agents ships none, and the HA Guide's and TripleO's systemd:memcached needs "
        "systemd as the node's init and its monitor asks systemd whether the unit is active, "
        "not whether memcached answers. Start refuses a missing binary or user and a port "
        "another process holds, and returns once memcached answers. Monitor depth 0 checks the "
        "process; depth 10 asks memcached its version over TCP; depth 20 stores an item of its "
        "own (expiring after 30 s) and reads it back, through the cache itself, which the "
        "version request never reaches. Stop is SIGTERM, then SIGKILL before the stop timeout "
        "runs out. The cache is lost on every restart: the services then ask keystone and the "
        "database again, and a token cached on a node that restarted is validated again."
    ),
    parameters=(
        Parameter(
            "binary",
            "memcached binary",
            "Full path of the memcached executable.",
            default="/usr/bin/memcached",
        ),
        Parameter(
            "address",
            "Address to listen on",
            "The IP address memcached binds and is checked on. Empty: the address this node's "
            "host name resolves to (as the OpenStack API agents bind), the address the "
            "services' memcache_servers list names for this node. Never every address on a "
            "network others can reach: memcached has no authentication here.",
            default="",
        ),
        Parameter(
            "port",
            "Port to listen on",
            "The TCP port memcached listens on (no UDP).",
            type="integer",
            default=memcached.PORT,
            minimum=1,
            maximum=65535,
        ),
        Parameter(
            "user",
            "User memcached runs as",
            "The system user memcached switches to (-u) once it has raised its open-file "
            "limit; it never serves as root.",
            default="memcache",
        ),
        Parameter(
            "memory",
            "Cache size in megabytes",
            "memcached's -m: the memory items may take, in MB (Debian's default 64). memcached "
            "refuses less than 2 (an item may be 1 MB, at most half of the memory).",
            type="integer",
            default=64,
            minimum=2,
            maximum=1048576,
        ),
        Parameter(
            "max_connections",
            "Maximum simultaneous connections",
            "memcached's -c (its default 1024). Each process of each service keeps a pool of "
            "connections to every node's memcached (oslo.cache's memcache_pool_maxsize, 10 by "
            "default). memcached 1.6 cannot run with fewer than about 32.",
            type="integer",
            default=1024,
            minimum=64,
            maximum=1048576,
        ),
        Parameter(
            "pidfile",
            "Pid file",
            "Where the agent records memcached's pid. Unique per resource; not the "
            "distribution's own (/run/memcached/memcached.pid).",
            default="/run/memcached/memcached-ocf.pid",
            unique_group="pidfile",
        ),
        Parameter(
            "log_file",
            "Where memcached's output goes",
            "File that receives memcached's standard output and error: why it exited, when "
            "it did (Debian's logfile).",
            default="/var/log/memcached.log",
        ),
        Parameter(
            "check_timeout",
            "Seconds after which a check is logged as slow",
            "A monitor's request to memcached that takes longer than this is logged as a "
            "warning. It fails the monitor only when no answer comes within the operation's "
            "own timeout, less a reserve for reporting (10 %, 2 to 5 s).",
            type="integer",
            default=5,
            minimum=1,
            maximum=120,
            reloadable=True,
        ),
    ),
    actions=(
        Action("start", timeout=20),
        Action("stop", timeout=20),
        Action("monitor", timeout=20, interval=10, depth=0),
        Action("monitor", timeout=20, interval=30, depth=10),
        Action("monitor", timeout=20, interval=60, depth=20),
        Action("reload-agent", timeout=20),
        Action("meta-data", timeout=5),
        Action("validate-all", timeout=20),
    ),
    example=(
        "pcs resource create memcached ocf:stackha:memcached "
        "op monitor interval=10s op monitor interval=30s OCF_CHECK_LEVEL=10 "
        "op monitor interval=60s OCF_CHECK_LEVEL=20 clone interleave=true"
    ),
)

PROCESSES = ProcTable()


def _integer(call: Call, name: str) -> int:
    """An integer parameter's value (each has a default: a bad value falls back to it)."""
    value = call.config[name]
    if not isinstance(value, int):
        raise NotConfigured(f"parameter {name} is not set")
    return value


def _host(call: Call) -> str:
    """The address memcached binds: the parameter, or this node's own address (as the API
    agents bind: where the services' server lists name this node)."""
    return bind_address(call)


def _probe_host(call: Call) -> str:
    from stackha.services import openstack_api

    return openstack_api.probe_host(_host(call))  # a wildcard bind is asked on loopback


def _pid(call: Call) -> Optional[int]:
    # The name guards against a stale pid file whose number another process now has.
    return running_pid(PROCESSES, str(call.config.pidfile), memcached.PROCESS_NAME)


def _check(call: Call, depth: int, budget: CheckBudget) -> None:
    """Depth 10: memcached answers ``version``; depth 20: it stores and gives back an item.
    Both share the call's budget (stackha.ocf.budget): slow is logged, not failed."""
    host, port = _probe_host(call), _integer(call, "port")
    try:
        budget.timed(
            f"'version' to {host}:{port}", lambda timeout: memcached.version(host, port, timeout)
        )
        if depth >= 20:
            value = os.urandom(8).hex()  # a value no earlier check left behind
            budget.timed(
                f"set and get on {host}:{port}",
                lambda timeout: memcached.store_and_read(host, port, value, timeout),
            )
    except memcached.MemcachedError as err:
        raise GenericError(str(err)) from None


def validate(call: Call) -> None:
    call.require_binary(str(call.config.binary))
    import pwd

    try:
        pwd.getpwnam(str(call.config.user))
    except KeyError:
        raise NotInstalled(f"user {call.config.user} does not exist on this node") from None
    address = str(call.config.address)
    if address:
        import ipaddress

        try:
            ipaddress.ip_address(address)
        except ValueError:
            # the resource's definition, the same on every node
            raise NotConfigured(f"parameter address: {address!r} is not an IP address") from None
    else:
        _host(call)


def _check_log_file(path: str) -> None:
    """The output file can be opened for appending as memcached's stdout (the runner opens
    it): a FIFO would block the start, a directory fail it."""
    if os.path.lexists(path) and not os.path.isfile(path):
        raise NotInstalled(f"log_file {path} is not a regular file")
    if not os.path.isdir(os.path.dirname(path) or "/"):
        raise NotInstalled(f"log_file {path}: its directory does not exist")


def start(call: Call) -> int:
    if _pid(call) is not None:
        call.log.info("memcached is already running")
        return OcfStatus.SUCCESS
    pidfile = str(call.config.pidfile)
    remove_stale_pidfile(PROCESSES, pidfile, memcached.PROCESS_NAME)
    host, port = _host(call), _integer(call, "port")
    from stackha.services import openstack_api

    problem = openstack_api.port_problem(host, port)
    if problem:
        # this node's: another memcached (the distribution's own?) or anything else on it
        raise NotInstalled(f"memcached cannot start: {problem}")
    log_file = str(call.config.log_file)
    _check_log_file(log_file)
    argv = memcached.command(
        str(call.config.binary),
        str(call.config.user),
        host,
        port,
        _integer(call, "memory"),
        _integer(call, "max_connections"),
    )
    from stackha.runner import CommandError

    try:
        # as root: memcached raises its file limit for -c, then switches to the user itself
        pid = start_daemon(call.runner, argv, pidfile=pidfile, output_path=log_file)
    except CommandError as err:
        raise GenericError(f"memcached did not start: {err}") from None
    except OSError as err:  # the output file or the pid file could not be written
        raise GenericError(f"memcached did not start: {err.filename}: {err.strerror}") from None
    _wait_serving(call, pid, log_file)
    call.log.info(f"memcached started (pid {pid}) and answers on {host}:{port}")
    return OcfStatus.SUCCESS


def _wait_serving(call: Call, pid: int, log_file: str) -> None:
    last_problem = ["no answer yet"]
    host, port = _probe_host(call), _integer(call, "port")

    def serving() -> bool:
        if not is_alive(PROCESSES, pid):
            said = memcached.last_output_line(log_file)
            raise GenericError(
                f"memcached exited during start{': ' + said if said else ''} "
                f"(its output is in {log_file})"
            )
        try:
            memcached.version(host, port, max(min(call.deadline.remaining() - 0.5, 2.0), 0.1))
        except memcached.MemcachedError as err:
            last_problem[0] = str(err)
            return False
        return True

    # serving()'s own GenericError (memcached exited) goes through wait_until unchanged
    try:
        wait_until(serving, call.deadline.sub(0.5), "memcached answering", 0.1)
    except ProcessError as err:
        raise GenericError(f"{err}: {last_problem[0]}") from None


def stop(call: Call) -> int:
    pid = _pid(call)
    if pid is not None:
        # memcached ends at once on SIGTERM; SIGKILL keeps a reserve of the stop's budget
        stop_process(PROCESSES, pid, call.deadline.sub(0.5), what="memcached")
        call.log.info("memcached stopped")
    if leftovers(call, stop=True):  # one its pid file did not name
        call.log.warning("stopped a memcached its pid file did not name")
    remove_stale_pidfile(PROCESSES, str(call.config.pidfile), memcached.PROCESS_NAME)
    return OcfStatus.SUCCESS


def leftovers(call: Call, stop: bool) -> list[int]:
    """memcached when stop or a probe cannot use the configuration: found by its pid file or
    by its own -l address and port on its command line (stackha.ocf.agent)."""
    try:
        marks = [memcached.listen_argument(_host(call)), str(_integer(call, "port"))]
    except NotInstalled:
        # No address to recognise it by. The port alone is no witness: the distribution's
        # own memcached (127.0.0.1:11211) would be taken for this resource and stopped.
        marks = []
    found = find_instance(PROCESSES, str(call.config.pidfile), memcached.PROCESS_NAME, marks)
    if stop:
        stop_all(PROCESSES, found, call.deadline, "memcached")
    return found


def monitor(call: Call) -> int:
    if _pid(call) is None:
        return OcfStatus.NOT_RUNNING
    depth = call.context.check_level
    if depth >= 10:
        _check(call, depth, call.check_budget(slow_after_s=float(call.config.check_timeout or 5)))
    return OcfStatus.SUCCESS


def reload_agent(call: Call) -> int:
    # check_timeout, the one reloadable parameter, is read by every monitor: nothing to do
    if _pid(call) is None:
        raise NotRunning("memcached is not running")
    return OcfStatus.SUCCESS


AGENT = Agent(
    spec=SPEC,
    handlers={
        "start": start,
        "stop": stop,
        "monitor": monitor,
        "reload-agent": reload_agent,
    },
    validate=validate,
    leftovers=leftovers,
)
