"""The OCF glue shared by the OpenStack API agents (``ocf:stackha:keystone``,
``ocf:stackha:nova-api``): what each action means for an HTTP API service that runs under uwsgi
(Debian and Ubuntu today) or as its own server (older distributions), cloned behind HAProxy.

An agent's module (``stackha.agents.keystone``, ``stackha.agents.nova_api``, ...) declares its
service (a :class:`~stackha.services.api_catalog.ApiService`, its record) and its descriptions
as ``AGENT = make_agent(...)``: a new API service is its record and a page of descriptions.
The workload knowledge (uwsgi ini files, version documents, tokens) is in
:mod:`stackha.services.openstack_api`.

- start refuses a config that does not parse, a port another process holds, an address that is
  not this node's; runs the service as its user; returns once the version document answers on
  the service's own address, or fails with the last problem seen.
- stop: SIGTERM to the master (uwsgi with ``--die-on-term``), SIGKILL before the stop timeout
  runs out, then whatever workers outlived it; stale pid file and UNIX sockets removed.
- monitor depth 0: the master and (under uwsgi) at least one worker; depth 10: the version
  document on the node's own address; depth 20: an authenticated request.
"""

from __future__ import annotations

import os

from stackha import __version__, http_client
from stackha.agents.node_address import bind_address
from stackha.clock import Deadline
from stackha.ocf.agent import Agent, Call
from stackha.ocf.spec import Action, AgentSpec, Parameter
from stackha.ocf.status import (
    GenericError,
    NotConfigured,
    NotInstalled,
    NotRunning,
    OcfStatus,
)
from stackha.process import (
    KILL_RESERVE_S,
    ProcessError,
    ProcTable,
    find_instance,
    is_alive,
    remove_own_file,
    remove_stale_pidfile,
    remove_stale_socket,
    running_pid,
    start_daemon,
    stop_all,
    stop_process,
    wait_until,
)
from stackha.services import openstack_api as api

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs agent start-up time; the type checker alone needs it
    from typing import Optional

    from stackha.ocf.budget import CheckBudget
    from stackha.services.api_catalog import ApiService
    from stackha.services.openstack_api import UwsgiConfig

UWSGI = "uwsgi"
# How long stop waits for the service to end on SIGTERM before it kills it.
STOP_GRACE_S = 10.0
EXECUTABLE = "executable"

PROCESSES = ProcTable()


def parameters(service: ApiService) -> tuple[Parameter, ...]:
    """The parameters every API agent takes, with ``service``'s Debian 12 defaults."""
    name = service.name
    return (
        Parameter(
            "mode",
            "How the service runs",
            f"'{UWSGI}': uwsgi with the distribution's ini file (Debian, Ubuntu). "
            f"'{EXECUTABLE}': the service's own server ({service.executable}).",
            type="select",
            choices=(UWSGI, EXECUTABLE),
            default=UWSGI,
        ),
        Parameter(
            "uwsgi_binary",
            "uwsgi executable",
            "Full path of uwsgi (mode uwsgi). The ini file's 'plugins' line loads Python.",
            default="/usr/bin/uwsgi",
        ),
        Parameter(
            "uwsgi_ini",
            "uwsgi ini file",
            "The uwsgi ini file (mode uwsgi). If it declares no http-socket (Debian's do not), "
            "the agent passes --http-socket address:port, as Debian's init script does; if it "
            "declares one, that socket is where the service listens and is probed.",
            default=service.uwsgi_ini,
        ),
        Parameter(
            "executable",
            "The service's own server",
            "Full path of the service's own server (mode executable).",
            default=service.executable,
        ),
        Parameter(
            "config",
            "Service configuration file",
            f"The {name} configuration file (oslo.config ini). It must parse; the service is "
            "pointed at it through its environment (uwsgi) or its command line.",
            default=service.config,
        ),
        Parameter(
            "user",
            "User the service runs as",
            "The system user the service runs as. uwsgi is started as this user, never as root.",
            default=service.user,
        ),
        Parameter(
            "pidfile",
            "Pid file",
            "Where the agent records the pid of the service's master process. Unique per resource.",
            default=service.pidfile,
            unique_group="pidfile",
        ),
        Parameter(
            "address",
            "Address to listen on",
            "The address the service binds and is probed on. Empty: the address this node's "
            "host name resolves to, so that each clone instance binds its own node's address "
            "and HAProxy can own the same port on the virtual IP. 0.0.0.0 binds every IPv4 "
            "address (probed on 127.0.0.1).",
            default="",
        ),
        Parameter(
            "port",
            "Port to listen on",
            "The TCP port the service listens on.",
            type="integer",
            default=service.port,
            minimum=1,
            maximum=65535,
        ),
        Parameter(
            "log_file",
            "Where the service's output goes",
            "File that receives the service's standard output and error (uwsgi's own 'logto' "
            "takes over once uwsgi has read its ini file).",
            default=service.log_file,
        ),
        Parameter(
            "credentials",
            "Credentials file for monitor depth 20",
            "A file of key=value lines (auth_url, username, password, project_name, "
            "user_domain_name, project_domain_name; an openrc file's OS_* exports work too) for "
            "the authenticated check of OCF_CHECK_LEVEL=20. Read by root only: keep it mode "
            "0600. Empty: no depth-20 check is possible.",
            default="",
            reloadable=True,
        ),
        Parameter(
            "check_timeout",
            "Seconds after which a check is logged as slow",
            "A monitor's request that takes longer than this is logged as a warning naming the "
            "request and how long it took. It fails the monitor only when no answer comes "
            "within the operation's own timeout, less a reserve for reporting (10 %, 2 to "
            "5 s): the requests of one monitor (depth 20: a token, then a request with it) "
            "share that time, so a service that is only slow under load is not restarted. To "
            "find a hung service sooner, shorten the monitor operation's timeout. (It was the "
            "time one request could take; an old value is still accepted.)",
            type="integer",
            default=5,
            minimum=1,
            maximum=120,
            reloadable=True,
        ),
    )


def make_spec(service: ApiService, shortdesc: str, longdesc: str, example: str) -> AgentSpec:
    return AgentSpec(
        name=service.name,
        version=__version__,
        shortdesc=shortdesc,
        longdesc=longdesc,
        parameters=parameters(service),
        actions=(
            Action("start", timeout=120),
            Action("stop", timeout=60),
            Action("monitor", timeout=30, interval=10, depth=0),
            Action("monitor", timeout=30, interval=30, depth=10),
            Action("monitor", timeout=60, interval=120, depth=20),
            Action("reload-agent", timeout=20),
            Action("meta-data", timeout=5),
            Action("validate-all", timeout=20),
        ),
        example=example,
    )


class ApiAgent:
    """The handlers of one API agent, bound to its service."""

    def __init__(self, service: ApiService) -> None:
        self.service = service

    # -- what the parameters mean ---------------------------------------------------------

    def uses_uwsgi(self, call: Call) -> bool:
        return str(call.config.mode) == UWSGI

    def program(self, call: Call) -> str:
        return str(call.config.uwsgi_binary if self.uses_uwsgi(call) else call.config.executable)

    def host(self, call: Call) -> str:
        """The address to bind: the parameter, or this node's own address."""
        return bind_address(call)

    def uwsgi_config(self, call: Call, host: Optional[str] = None) -> UwsgiConfig:
        path = str(call.config.uwsgi_ini)
        try:
            # an ini with a socket of its own needs no address (nor a host name to resolve)
            return api.read_uwsgi_ini(path)
        except api.ConfigError:
            pass
        default = api.socket_address(host if host is not None else self.host(call), self.port(call))
        try:
            return api.read_uwsgi_ini(path, default)
        except api.ConfigError as err:
            raise NotInstalled(str(err)) from None

    def port(self, call: Call) -> int:
        return int(call.config.port or self.service.port)

    def endpoint(self, call: Call) -> tuple[str, int]:
        """Where the service listens: (host, port) as bound."""
        if self.uses_uwsgi(call):
            listener = self.uwsgi_config(call).http_listener
            return listener.host, listener.port
        return self.host(call), self.port(call)

    def url(self, call: Call) -> str:
        host, port = self.endpoint(call)
        return api.endpoint_url(api.probe_host(host), port)

    def listen_config_path(self, call: Call) -> str:
        return f"{call.config.pidfile}.listen.conf"

    def budget(self, call: Call) -> CheckBudget:
        """The time this call's requests to the service share (stackha.ocf.budget)."""
        return call.check_budget(slow_after_s=float(call.config.check_timeout or 5))

    # -- validation ------------------------------------------------------------------------

    def missing(self, what: str, path: str, default: str) -> NotInstalled:
        """``what`` at ``path`` does not exist: when it is the service's own default, the
        package that installs it is named, which is what a node without it lacks."""
        packages = " ".join(self.service.lab.packages)
        if path == default and packages:
            return NotInstalled(f"{what} {path} does not exist: is {packages} installed?")
        return NotInstalled(f"{what} {path} does not exist")

    def validate(self, call: Call) -> None:
        program = self.program(call)
        if program == self.service.executable and not call.binary_available(program):
            raise self.missing("the service's own server", program, self.service.executable)
        call.require_binary(program)
        config = str(call.config.config)
        problem = api.config_name_problem(self.service, config)
        if problem:
            # the resource's definition: the same on every node
            raise NotConfigured(problem)
        if not os.path.isfile(config):
            raise self.missing("config file", config, self.service.config)
        # Exit codes: the files are each node's own, so a bad one is this node's problem (5: the
        # clone keeps running elsewhere); 6 would stop the clone on every node.
        try:
            api.check_service_config(config)
        except api.ConfigError as err:
            raise NotInstalled(str(err)) from None
        for companion in api.companion_files(self.service, config):
            if not os.path.isfile(companion):
                raise NotInstalled(f"{companion} does not exist ({self.service.name} reads it)")
        if self.uses_uwsgi(call):
            ini = str(call.config.uwsgi_ini)
            if not os.path.isfile(ini):
                raise self.missing("uwsgi ini file", ini, self.service.uwsgi_ini)
            daemonize = self.uwsgi_config(call).daemonize
            if daemonize:
                raise NotInstalled(
                    f"uwsgi ini file {ini} daemonizes (daemonize = {daemonize}): uwsgi would "
                    "leave the agent that watches it; remove that line"
                )
        else:
            self.host(call)
        import pwd

        try:
            pwd.getpwnam(str(call.config.user))
        except KeyError:
            raise NotInstalled(f"user {call.config.user} does not exist on this node") from None
        if call.config.credentials:
            self.credentials(call)

    def credentials(self, call: Call) -> api.Credentials:
        path = str(call.config.credentials)
        if not path:
            raise NotConfigured("OCF_CHECK_LEVEL=20 needs the credentials parameter")
        try:
            return api.read_openstack_credentials(path)
        except api.CredentialsError as err:
            # each node's own file (see validate)
            raise NotInstalled(str(err)) from None

    # -- state -----------------------------------------------------------------------------

    def process_name(self, call: Call) -> str:
        """The master's command name (/proc/PID/comm keeps 15 characters)."""
        return os.path.basename(self.program(call))[:15]

    def master(self, call: Call) -> Optional[int]:
        # The name guards against a stale pid file whose number another process now has.
        return running_pid(PROCESSES, str(call.config.pidfile), self.process_name(call))

    def status(self, call: Call, depth: int) -> Optional[int]:
        """The master's pid, or None when the service is not running; raises on a failure."""
        master = self.master(call)
        if master is None:
            return None
        if self.uses_uwsgi(call) and not any(
            is_alive(PROCESSES, pid) for pid in PROCESSES.children(master)
        ):
            raise GenericError(f"{self.service.name} uwsgi master (pid {master}) has no worker")
        budget = self.budget(call)
        if depth >= 10:
            self.check_version(call, budget)
        if depth >= 20:
            self.check_authenticated(call, budget)
        return master

    def check_version(self, call: Call, budget: CheckBudget) -> None:
        url = self.url(call)
        path = self.service.version_path
        # asked for as the services' own clients ask (the client sends no header of its own)
        headers = {"Accept": "application/json"}
        try:
            answer = budget.timed(
                f"GET {path}", lambda timeout: http_client.get(url + path, timeout, headers)
            )
        except http_client.HttpError as err:
            raise GenericError(f"{self.service.name}: {err}") from None
        problem = api.version_document_ok(answer.status, answer.body, self.service)
        if problem:
            raise GenericError(f"{self.service.name} at {url}: {problem}")

    def check_authenticated(self, call: Call, budget: CheckBudget) -> None:
        credentials = self.credentials(call)
        url = self.url(call)
        try:
            api.check_authenticated(self.service, url, credentials, budget)
        except api.CredentialsError as err:
            raise NotInstalled(f"credentials file {call.config.credentials}: {err}") from None
        except api.KeystoneUnavailable as err:
            # Not this service's fault: restarting it would not bring Keystone back.
            call.log.warning(f"depth-20 check skipped, {err}; judged on its version document")
        except (api.OpenStackApiError, http_client.HttpError) as err:
            raise GenericError(f"{self.service.name} at {url}: {err}") from None

    # -- actions ---------------------------------------------------------------------------

    def start(self, call: Call) -> int:
        if self.status(call, depth=0) is not None:
            call.log.info(f"{self.service.name} is already running")
            return OcfStatus.SUCCESS
        self.clean_up(call)
        argv, host, port = self.command(call)
        problem = api.port_problem(host, port)
        if problem:
            raise NotInstalled(f"{self.service.name} cannot start: {problem}")
        env = api.service_environment(self.service, str(call.config.config))
        log_file = str(call.config.log_file)
        create_log(log_file, str(call.config.user))
        from stackha.runner import CommandError

        try:
            pid = start_daemon(
                call.runner,
                argv,
                user=str(call.config.user),
                pidfile=str(call.config.pidfile),
                output_path=log_file,
                env=env,
            )
        except CommandError as err:
            raise GenericError(f"{self.service.name} did not start: {err}") from None
        self.wait_serving(call, pid, log_file)
        call.log.info(f"{self.service.name} started (pid {pid}) and answers at {self.url(call)}")
        return OcfStatus.SUCCESS

    def command(self, call: Call) -> tuple[list[str], str, int]:
        """The command line, and the address and port it will listen on."""
        if self.uses_uwsgi(call):
            ini = self.uwsgi_config(call)
            pyargv = api.uwsgi_pyargv(self.service, str(call.config.config))
            argv = api.uwsgi_argv(str(call.config.uwsgi_binary), ini, pyargv)
            return argv, *self.endpoint(call)
        host, port = self.host(call), self.port(call)
        listen_config = self.listen_config_path(call)
        text = api.listen_config_text(self.service, host, port)
        if text:
            # before start_daemon, which makes the pid file's directory: /run/nova may not exist
            os.makedirs(os.path.dirname(listen_config) or "/", exist_ok=True)
            with open(listen_config, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(listen_config, 0o644)
        argv = api.executable_argv(
            self.service,
            str(call.config.executable),
            str(call.config.config),
            host,
            port,
            listen_config,
        )
        return argv, host, port

    def wait_serving(self, call: Call, pid: int, log_file: str) -> None:
        last_problem = ["no answer yet"]
        # Each try may wait for what is left of the start: a service slow to answer its first
        # request is starting, not failed (nor worth a warning: the workers load the application
        # meanwhile). One that dies closes its socket: the try ends then.
        budget = call.check_budget(slow_after_s=call.context.timeout_s)

        def serving() -> bool:
            if not is_alive(PROCESSES, pid):
                raise GenericError(
                    f"{self.service.name} exited during start; its output is in {log_file}"
                )
            try:
                self.check_version(call, budget)
            except GenericError as err:
                last_problem[0] = err.reason
                return False
            return True

        # serving()'s own GenericError (the service exited) goes through wait_until unchanged
        try:
            wait_until(serving, call.deadline.sub(1.0), f"{self.service.name} answering", 0.2)
        except ProcessError as err:
            raise GenericError(f"{err}: {last_problem[0]}") from None

    def stop(self, call: Call) -> int:
        master = self.master(call)
        if master is not None:
            workers = PROCESSES.children(master)
            # A clean uwsgi stop takes about a second. A worker still importing the application
            # when SIGTERM comes keeps the master waiting uwsgi's worker-reload-mercy (60 s):
            # past STOP_GRACE_S the master and its workers are killed.
            budget = max(call.deadline.remaining() - 1.0, 0.0)
            grace = Deadline(call.clock, min(STOP_GRACE_S + KILL_RESERVE_S, budget))
            stop_process(PROCESSES, master, grace, what=f"{self.service.name} master")
            for worker in workers:
                # the master is gone: whatever worker is left serves nothing
                stop_process(
                    PROCESSES,
                    worker,
                    Deadline(call.clock, min(1.0 + KILL_RESERVE_S, call.deadline.remaining())),
                    what=f"{self.service.name} worker",
                    reserve=KILL_RESERVE_S,
                )
            call.log.info(f"{self.service.name} stopped")
        if self.leftovers(call, stop=True):  # a master its pid file did not name
            call.log.warning(f"stopped a {self.service.name} its pid file did not name")
        self.clean_up(call)
        return OcfStatus.SUCCESS

    def leftovers(self, call: Call, stop: bool) -> list[int]:
        """The master (and its workers) when stop or a probe cannot use the configuration:
        found by the pid file or by the uwsgi ini / configuration file on its command line
        (stackha.ocf.agent)."""
        mark = str(call.config.uwsgi_ini if self.uses_uwsgi(call) else call.config.config)
        found = find_instance(PROCESSES, str(call.config.pidfile), self.process_name(call), [mark])
        if stop:
            stop_all(PROCESSES, found, call.deadline, self.service.name)
        return found

    def clean_up(self, call: Call) -> None:
        """Remove what a dead service left: its pid file, its listen file and UNIX sockets —
        each only when it is what the service or this agent wrote (stackha.process)."""
        remove_stale_pidfile(PROCESSES, str(call.config.pidfile), self.process_name(call))
        remove_own_file(self.listen_config_path(call), api.listen_config_header(self.service))
        if not self.uses_uwsgi(call) or not os.path.isfile(str(call.config.uwsgi_ini)):
            return
        try:
            ini = self.uwsgi_config(call, host="")
        except NotInstalled:
            return
        for listener in ini.listeners:
            if listener.is_unix and listener.host.startswith("/"):
                remove_stale_socket(listener.host)

    def monitor(self, call: Call) -> int:
        if self.status(call, depth=call.context.check_level) is None:
            return OcfStatus.NOT_RUNNING
        return OcfStatus.SUCCESS

    def reload_agent(self, call: Call) -> int:
        # credentials and check_timeout are read by every monitor: nothing to do but check them
        if self.status(call, depth=0) is None:
            raise NotRunning(f"{self.service.name} is not running")
        return OcfStatus.SUCCESS


def create_log(path: str, user: str) -> None:
    """Create the service's output file, owned by the service's user: when it is also the file
    of uwsgi's ``logto`` (or the service's own log), the service must be able to open it too."""
    import pwd

    try:
        os.makedirs(os.path.dirname(path) or "/", mode=0o750, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        if not os.path.isfile(path):  # a directory, a FIFO: the service could not write to it
            raise NotInstalled(f"log_file {path} is not a regular file") from None
        return
    except OSError as err:  # a parent that is a file, a name too long
        raise NotInstalled(f"log_file {path}: {err.strerror}") from None
    os.close(descriptor)
    account = pwd.getpwnam(user)
    os.chown(path, account.pw_uid, account.pw_gid)


def make_agent(service: ApiService, shortdesc: str, longdesc: str, example: str) -> Agent:
    handlers = ApiAgent(service)
    return Agent(
        spec=make_spec(service, shortdesc, longdesc, example),
        handlers={
            "start": handlers.start,
            "stop": handlers.stop,
            "monitor": handlers.monitor,
            "reload-agent": handlers.reload_agent,
        },
        validate=handlers.validate,
        leftovers=handlers.leftovers,
    )
