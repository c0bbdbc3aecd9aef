"""ocf:stackha:haproxy — HAProxy, the load balancer of the active/active stateless pattern.

OCF glue only: what each action means for HAProxy. The workload knowledge is in
stackha.services.haproxy. Usually run as a clone, one HAProxy on every controller, with the
virtual IP colocated with the clone.
"""

from __future__ import annotations

import os

from stackha import __version__
from stackha.ocf.agent import Agent, Call
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import GenericError, InvalidArgs, NotRunning, OcfStatus
from stackha.process import (
    ProcessError,
    ProcTable,
    find_instance,
    remove_stale_pidfile,
    stop_all,
    stop_process,
    wait_until,
)
from stackha.services import haproxy

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from typing import Optional

SPEC = AgentSpec(
    name="haproxy",
    version=__version__,
    shortdesc="HAProxy load balancer (master-worker, seamless reload)",
    longdesc=(
        "Runs HAProxy in master-worker mode from a configuration file. Start refuses a "
        "configuration that 'haproxy -c' rejects, with HAProxy's own reason, and returns once "
        "HAProxy serves. Monitor depth 0 checks the master and its workers; depth 10 also asks "
        "HAProxy itself through its stats socket and, if set, a health URL. reload and "
        "reload-agent check the configuration and reload without dropping connections. "
        "Meant to run as a clone on every controller, with the virtual IP colocated with it."
    ),
    parameters=(
        Parameter(
            "binary",
            "HAProxy binary",
            "Full path of the haproxy executable.",
            default="/usr/sbin/haproxy",
        ),
        Parameter(
            "config",
            "Configuration file",
            "Full path of the HAProxy configuration file. It must be the same on every node "
            "the clone runs on.",
            default="/etc/haproxy/haproxy.cfg",
        ),
        Parameter(
            "pidfile",
            "Pid file of the master process",
            "Where HAProxy writes the pid of its master process. Must be unique per resource.",
            default="/run/haproxy.pid",
            unique_group="pidfile",
        ),
        Parameter(
            "stats_socket",
            "Stats socket for monitoring",
            "UNIX stats socket that monitor depth 10 asks 'show info'. Empty: the first "
            "'stats socket' of the configuration's global section, if any.",
            default="",
            reloadable=True,
        ),
        Parameter(
            "health_url",
            "Health URL for monitoring",
            "An http:// URL that monitor depth 10 fetches, for example a 'monitor-uri' of the "
            "configuration on this node's address. Any answer below 400 is healthy. Empty: none.",
            default="",
            reloadable=True,
        ),
        Parameter(
            "check_timeout",
            "Seconds after which a check is logged as slow",
            "A stats-socket or health-URL check that takes longer than this is logged as a "
            "warning naming the check and how long it took. It fails the monitor only when no "
            "answer comes within the operation's own timeout, less a reserve for reporting "
            "(10 %, 2 to 5 s), which the two checks share: a HAProxy slow under load is not "
            "restarted. To find a hung HAProxy sooner, shorten the monitor operation's timeout. "
            "(It was the time one check could take; an old value is still accepted.)",
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
        Action("reload", timeout=20),
        Action("reload-agent", timeout=20),
        Action("meta-data", timeout=5),
        Action("validate-all", timeout=20),
    ),
    example=(
        "pcs resource create haproxy ocf:stackha:haproxy "
        "config=/etc/haproxy/haproxy.cfg op monitor interval=10s OCF_CHECK_LEVEL=10 "
        "clone interleave=true"
    ),
)

PROCESSES = ProcTable()


def _config_text(call: Call) -> str:
    try:
        with open(str(call.config.config), encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as err:
        raise InvalidArgs(f"cannot read config {call.config.config}: {err.strerror}") from err


def _stats_socket(call: Call) -> Optional[str]:
    if call.config.stats_socket:
        return str(call.config.stats_socket)
    sockets = haproxy.stats_sockets(_config_text(call))
    return sockets[0] if sockets else None


def _check_service(call: Call) -> None:
    """Depth 10: HAProxy answers on its stats socket and the health URL; raises HaproxyError.
    Both share the call's budget (stackha.ocf.budget): slow is logged, not failed."""
    budget = call.check_budget(slow_after_s=float(call.config.check_timeout or 5))
    path = _stats_socket(call)
    if path:
        socket_path = path
        info = budget.timed(
            f"'show info' on {socket_path}",
            lambda timeout: haproxy.show_info(socket_path, timeout),
        )
        if info.stopping:
            raise haproxy.HaproxyError(f"HAProxy (worker {info.pid}) is stopping")
    if call.config.health_url:
        url = str(call.config.health_url)
        budget.timed(f"GET {url}", lambda timeout: haproxy.http_check(url, timeout))


def _status(call: Call, depth: int) -> Optional[int]:
    """The running master's pid, or None when HAProxy is not running; raises on a failure."""
    master = haproxy.master_pid(PROCESSES, str(call.config.pidfile))
    if master is None:
        return None
    if not haproxy.worker_pids(PROCESSES, master):
        raise GenericError(f"HAProxy master (pid {master}) has no running worker")
    if depth >= 10:
        try:
            _check_service(call)
        except haproxy.HaproxyError as err:
            raise GenericError(str(err)) from err
    return master


def validate(call: Call) -> None:
    call.require_binary(str(call.config.binary))
    config = str(call.config.config)
    if not os.path.isfile(config):
        raise InvalidArgs(f"config file {config} does not exist")
    try:
        haproxy.check_config(
            call.runner, str(call.config.binary), config, timeout=call.deadline.remaining()
        )
    except haproxy.InvalidConfig as err:
        raise InvalidArgs(f"haproxy -c rejects {config}: {err}") from err


def _wait_serving(call: Call, what: str) -> None:
    last_problem = ["no answer yet"]

    def serving() -> bool:
        try:
            return _status(call, depth=10) is not None
        except GenericError as err:
            last_problem[0] = err.reason
            return False

    try:
        wait_until(serving, call.deadline.sub(0.5), what)
    except ProcessError as err:
        raise GenericError(f"{err}: {last_problem[0]}") from err


def start(call: Call) -> int:
    if _status(call, depth=0) is not None:
        call.log.info("HAProxy is already running")
        return OcfStatus.SUCCESS
    remove_stale_pidfile(PROCESSES, str(call.config.pidfile), haproxy.PROCESS_NAME)
    haproxy.prepare_runtime(_config_text(call))
    try:
        haproxy.start(
            call.runner,
            str(call.config.binary),
            str(call.config.config),
            str(call.config.pidfile),
            timeout=call.deadline.remaining(),
        )
    except haproxy.HaproxyError as err:
        raise GenericError(f"HAProxy did not start: {err}") from err
    _wait_serving(call, "HAProxy serving")
    call.log.info("HAProxy started and serving")
    return OcfStatus.SUCCESS


def stop(call: Call) -> int:
    pidfile = str(call.config.pidfile)
    master = haproxy.master_pid(PROCESSES, pidfile)
    if master is not None:
        workers = haproxy.worker_pids(PROCESSES, master)
        # SIGTERM to the master is HAProxy's hard stop: it ends the workers and then itself.
        stop_process(PROCESSES, master, call.deadline.sub(1.0), what="HAProxy master")
        for worker in workers:
            stop_process(PROCESSES, worker, call.deadline, what="HAProxy worker")
        call.log.info("HAProxy stopped")
    # and any HAProxy of this configuration the pid file did not name (a wrong pidfile)
    others = leftovers(call, stop=True)
    if others:
        call.log.warning(f"stopped HAProxy on {call.config.config} that {pidfile} did not name")
    remove_stale_pidfile(PROCESSES, pidfile, haproxy.PROCESS_NAME)
    return OcfStatus.SUCCESS


def leftovers(call: Call, stop: bool) -> list[int]:
    """HAProxy's master when stop or a probe cannot use the configuration: found by its pid
    file or by its -f configuration file (stackha.ocf.agent), with its workers."""
    found = find_instance(
        PROCESSES, str(call.config.pidfile), haproxy.PROCESS_NAME, [str(call.config.config)]
    )
    if stop:
        stop_all(PROCESSES, found, call.deadline, "HAProxy")
    return found


def monitor(call: Call) -> int:
    if _status(call, depth=call.context.check_level) is None:
        return OcfStatus.NOT_RUNNING
    return OcfStatus.SUCCESS


def reload(call: Call) -> int:
    # validate() has checked the configuration already (as for start): a broken file never
    # reaches the running HAProxy.
    master = _status(call, depth=0)
    if master is None:
        raise NotRunning("HAProxy is not running, nothing to reload")
    try:
        worker = haproxy.reload(PROCESSES, master, call.deadline.sub(1.0))
    except haproxy.HaproxyError as err:
        raise GenericError(str(err)) from err
    _wait_serving(call, "HAProxy serving after reload")
    call.log.info(f"HAProxy reloaded, new worker pid {worker}")
    return OcfStatus.SUCCESS


AGENT = Agent(
    spec=SPEC,
    handlers={
        "start": start,
        "stop": stop,
        "monitor": monitor,
        "reload": reload,
        "reload-agent": reload,
    },
    validate=validate,
    leftovers=leftovers,
)
