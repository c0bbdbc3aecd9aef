"""The OpenStack API services stackha runs, one record each: everything that is particular to a
service lives in its :class:`ApiService` here, and every other part of stackha reads it from
there — the OCF agent's parameters and checks (``stackha.agents.api_service``), the site file's
service names (``stackha.cib.site``), the constraints the renderer writes (``stackha.cib.render``),
the lab's packages, directories, configuration files, databases and Keystone registrations
(``stackha.lab.openstack``). A new API service is a record here and a declaration in
``stackha.agents`` (its descriptions); ``tests/unit/test_api_catalog.py`` fails if a service's
name is written anywhere else in the library, the agents or the templates.

The facts are those of Debian's packages: the paths, users and uwsgi ini files are Debian 12's
and Debian 13's alike (checked in the lab on both).

Nothing here imports anything: the module is on every API agent's monitor path. Run as
``python3 -m stackha.services.api_catalog`` it prints the services' Debian packages, for the
Makefile, the Debian package's Suggests and a public Vagrant box's provisioning.
"""

from __future__ import annotations

from stackha.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

# A placeholder of a lab configuration value or setup command (see LabFacts):
#   {node} {address}: the node's name and address; {vip}: the API VIP;
#   {transport_url}: the RabbitMQ URL of every node; {db_NAME}: the URL of database NAME as the
#   service's database user; {keystone_url}: Keystone's base URL on the VIP (no /v3);
#   {admin_user} {admin_project} {region}: keystone-manage bootstrap's; {memcache_servers}:
#   every node's memcached (oslo.cache's list, stackha.services.memcached.server_list).


class UnknownService(LookupError):
    """No API service of that name."""


class SetupStep(Record):
    """One command the lab runs once, on the first node, as the service's user, to make the
    service's database and state: ``argv`` (placeholders allowed), the exit codes that mean
    done (2 for "made already" of a rerun), the environment it needs (values with placeholders:
    a password travels there, never on a command line)."""

    __slots__ = ("argv", "accept", "env")
    argv: tuple[str, ...]
    accept: tuple[int, ...]
    env: tuple[tuple[str, str], ...]

    def __init__(
        self,
        argv: tuple[str, ...],
        accept: tuple[int, ...] = (0,),
        env: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._freeze(locals())

    @property
    def what(self) -> str:
        """What the step is called in progress lines: the program's name and its verbs."""
        words = [self.argv[0].rpartition("/")[2]]
        for word in self.argv[1:3]:
            if word.startswith("-") or "{" in word:
                break
            words.append(word)
        return " ".join(words)


class CatalogEntry(Record):
    """The service's entry in Keystone's catalog: its name and type, and what its endpoints'
    URL adds to the VIP's ``http://vip:port`` (cinder's names the project)."""

    __slots__ = ("name", "type", "path")
    name: str
    type: str
    path: str

    def __init__(self, name: str, type: str, path: str = "") -> None:
        self._freeze(locals())


class LabFacts(Record):
    """What the lab's provisioning (``stackha.lab.openstack``) needs of a service.

    - ``packages``: the Debian packages that install it (the lab's nodes get them);
    - ``units``: the distribution's systemd units of it, which the Vagrant box disables (the
      cluster starts the service, never the distribution);
    - ``state_dirs``: directories each node keeps a private copy of (configuration, state);
    - ``workers``: uwsgi (processes, threads) for three nodes on two cores;
    - ``databases``: made on Galera for the service's user (its name);
    - ``config``: the configuration file's sections and options (placeholders allowed);
      ``authtoken``: whether it gets a ``[keystone_authtoken]`` section (keystonemiddleware
      validating clients' tokens as the service's Keystone user);
    - ``lock_dirs``: directories the service's user writes (oslo.concurrency's lock path);
    - ``setup``: the commands that make its database and state, in order;
    - ``replicated_dirs``: directories made on the first node and copied to the others
      (Keystone's Fernet and credential keys: a token one node issues must be valid on all);
    - ``catalog``: its entry in Keystone's catalog (None: keystone's own, made by bootstrap).
    """

    __slots__ = (
        "packages",
        "units",
        "state_dirs",
        "workers",
        "databases",
        "config",
        "authtoken",
        "lock_dirs",
        "setup",
        "replicated_dirs",
        "catalog",
    )
    packages: tuple[str, ...]
    units: tuple[str, ...]
    state_dirs: tuple[str, ...]
    workers: tuple[int, int]
    databases: tuple[str, ...]
    config: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    authtoken: bool
    lock_dirs: tuple[str, ...]
    setup: tuple[SetupStep, ...]
    replicated_dirs: tuple[str, ...]
    catalog: Optional[CatalogEntry]

    def __init__(
        self,
        packages: tuple[str, ...],
        units: tuple[str, ...],
        state_dirs: tuple[str, ...],
        workers: tuple[int, int],
        databases: tuple[str, ...],
        config: tuple[tuple[str, tuple[tuple[str, str], ...]], ...],
        authtoken: bool,
        lock_dirs: tuple[str, ...],
        setup: tuple[SetupStep, ...],
        replicated_dirs: tuple[str, ...] = (),
        catalog: Optional[CatalogEntry] = None,
    ) -> None:
        self._freeze(locals())


class ApiService(Record):
    """One API service as Debian packages it.

    How it runs and listens: ``uwsgi_ini``, ``wsgi_file``, ``user``, ``config`` (its oslo.config
    file). How a uwsgi-run service is pointed at a config file other than the default: the
    environment its WSGI application reads its configuration directory and files from
    (``config_env``: variable and value, ``{dir}`` and ``{name}`` being the config file's
    directory and name; keystone/server/flask/core.py, nova/api/openstack/wsgi_app.py), or
    the arguments uwsgi passes it (``uwsgi_args``, its ``--pyargv``: cinder reads sys.argv).
    ``config_name``: the one file name the application reads from that directory, when it
    takes no list ("" when any name works); ``companions``: the files beside it that it reads
    too (nova's ``api-paste.ini``). ``executable`` is the service's own server, for
    distributions that do not run it under uwsgi;
    ``listen_options`` (section, address option, port option) and ``listen_settings`` (more
    options of that section) make the extra config file of a server that takes its address
    from its configuration only.

    What a healthy one answers: ``GET version_path`` with one of ``version_statuses`` and a
    version document naming ``version_id`` (or ``version_id.N``). The deep check (monitor depth
    20): ``GET authenticated_path`` with a token and ``authenticated_headers`` (``{project_id}``
    is the token's project); None: the token request itself is the check (keystone's).

    What it needs (the renderer's constraints): ``uses_database`` (Galera, through the site's
    database path), ``uses_messaging`` (RabbitMQ), ``validates_tokens`` (Keystone, through the
    VIP: ordered after keystone's clone at start only, so that a keystone restart does not
    restart it), ``uses_cache`` (memcached on every node, its oslo.cache ``[cache]``: ordered
    after the memcached clone at start only; the service works without its cache, so a
    memcached restart must not restart it).
    """

    __slots__ = (
        "name",
        "port",
        "version_path",
        "version_id",
        "version_statuses",
        "uwsgi_ini",
        "wsgi_file",
        "user",
        "config",
        "config_env",
        "config_name",
        "companions",
        "uwsgi_args",
        "executable",
        "executable_args",
        "listen_options",
        "listen_settings",
        "authenticated_path",
        "authenticated_headers",
        "uses_database",
        "uses_messaging",
        "validates_tokens",
        "lab",
        "uses_cache",
    )
    name: str
    port: int
    version_path: str
    version_id: str
    version_statuses: tuple[int, ...]
    uwsgi_ini: str
    wsgi_file: str
    user: str
    config: str
    config_env: tuple[tuple[str, str], ...]
    config_name: str
    companions: tuple[str, ...]
    uwsgi_args: tuple[str, ...]
    executable: str
    executable_args: tuple[str, ...]
    listen_options: Optional[tuple[str, str, str]]
    listen_settings: tuple[tuple[str, str], ...]
    authenticated_path: Optional[str]
    authenticated_headers: tuple[tuple[str, str], ...]
    uses_database: bool
    uses_messaging: bool
    validates_tokens: bool
    lab: LabFacts
    uses_cache: bool

    def __init__(
        self,
        name: str,
        port: int,
        version_path: str,
        version_id: str,
        version_statuses: tuple[int, ...],
        uwsgi_ini: str,
        wsgi_file: str,
        user: str,
        config: str,
        config_env: tuple[tuple[str, str], ...],
        config_name: str,
        companions: tuple[str, ...],
        uwsgi_args: tuple[str, ...],
        executable: str,
        executable_args: tuple[str, ...],
        listen_options: Optional[tuple[str, str, str]],
        listen_settings: tuple[tuple[str, str], ...],
        authenticated_path: Optional[str],
        authenticated_headers: tuple[tuple[str, str], ...],
        uses_database: bool,
        uses_messaging: bool,
        validates_tokens: bool,
        lab: LabFacts,
        uses_cache: bool = False,
    ) -> None:
        self._freeze(locals())

    @property
    def config_dir(self) -> str:
        return self.config.rpartition("/")[0]

    @property
    def log_dir(self) -> str:
        return f"/var/log/{self.user}"

    @property
    def run_dir(self) -> str:
        return f"/run/{self.user}"

    @property
    def pidfile(self) -> str:
        """The agent's default pid file."""
        return f"{self.run_dir}/{self.name}-ocf.pid"

    @property
    def log_file(self) -> str:
        """The agent's default log file."""
        return f"{self.log_dir}/{self.name}-ocf.log"

    @property
    def monitor_credentials(self) -> str:
        """Where a deployment keeps the depth-20 monitor's credentials file (root, 0600)."""
        return f"{self.config_dir}/stackha-monitor.credentials"


# -- the services ----------------------------------------------------------------------------

KEYSTONE_MANAGE = "/usr/bin/keystone-manage"
NOVA_MANAGE = "/usr/bin/nova-manage"

KEYSTONE = ApiService(
    name="keystone",
    port=5000,
    version_path="/v3",
    version_id="v3",
    version_statuses=(200,),
    uwsgi_ini="/etc/keystone/keystone-uwsgi.ini",
    wsgi_file="/usr/bin/keystone-wsgi-public",
    user="keystone",
    config="/etc/keystone/keystone.conf",
    config_env=(("OS_KEYSTONE_CONFIG_DIR", "{dir}"), ("OS_KEYSTONE_CONFIG_FILES", "{name}")),
    config_name="",
    companions=(),
    uwsgi_args=(),
    # pbr's generated script serves the application with wsgiref when run directly
    executable="/usr/bin/keystone-wsgi-public",
    executable_args=("--host", "{host}", "--port", "{port}"),
    listen_options=None,
    listen_settings=(),
    # keystone's deep check is the token request itself, sent to this node
    authenticated_path=None,
    authenticated_headers=(),
    uses_database=True,
    # keystone sends no RPC and its notifications are off: a RabbitMQ restart is nothing to it
    uses_messaging=False,
    validates_tokens=False,
    lab=LabFacts(
        packages=("keystone",),
        units=("keystone",),
        state_dirs=("/etc/keystone", "/var/lib/keystone"),
        # Debian: 8 processes of 32 threads
        workers=(2, 2),
        databases=("keystone",),
        config=(
            ("DEFAULT", (("log_dir", "/var/log/keystone"), ("log_file", "keystone.log"))),
            # every node's memcached (the memcached clone), shared by every node's keystone:
            # oslo.cache spreads its keys over them
            (
                "cache",
                (
                    ("enabled", "true"),
                    ("backend", "oslo_cache.memcache_pool"),
                    ("memcache_servers", "{memcache_servers}"),
                ),
            ),
            ("credential", (("key_repository", "/etc/keystone/credential-keys/"),)),
            ("database", (("connection", "{db_keystone}"),)),
            ("fernet_tokens", (("key_repository", "/etc/keystone/fernet-keys/"),)),
            ("oslo_policy", (("policy_dirs", "/etc/keystone/policy.d"),)),
            ("token", (("provider", "fernet"),)),
        ),
        authtoken=False,
        lock_dirs=(),
        setup=(
            SetupStep((KEYSTONE_MANAGE, "db_sync")),
            SetupStep(
                (
                    KEYSTONE_MANAGE,
                    "fernet_setup",
                    "--keystone-user",
                    "keystone",
                    "--keystone-group",
                    "keystone",
                )
            ),
            SetupStep(
                (
                    KEYSTONE_MANAGE,
                    "credential_setup",
                    "--keystone-user",
                    "keystone",
                    "--keystone-group",
                    "keystone",
                )
            ),
            # the admin's password through the environment, never the command line
            SetupStep(
                (
                    KEYSTONE_MANAGE,
                    "bootstrap",
                    "--bootstrap-username",
                    "{admin_user}",
                    "--bootstrap-project-name",
                    "{admin_project}",
                    "--bootstrap-region-id",
                    "{region}",
                    "--bootstrap-admin-url={keystone_url}/v3/",
                    "--bootstrap-internal-url={keystone_url}/v3/",
                    "--bootstrap-public-url={keystone_url}/v3/",
                ),
                env=(("OS_BOOTSTRAP_PASSWORD", "{admin_password}"),),
            ),
        ),
        replicated_dirs=("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys"),
    ),
    # its token validations, catalog and assignments, cached on the memcached clone
    uses_cache=True,
)

NOVA_API = ApiService(
    name="nova-api",
    port=8774,
    version_path="/",
    version_id="v2.1",
    # nova answers 300 {"choices": [...]} to paths it does not serve
    version_statuses=(200, 300),
    uwsgi_ini="/etc/nova/nova-api-uwsgi.ini",
    wsgi_file="/usr/bin/nova-api-wsgi",
    user="nova",
    config="/etc/nova/nova.conf",
    # nova's WSGI application loads its paste pipeline from the first file of the list
    config_env=(("OS_NOVA_CONFIG_DIR", "{dir}"), ("OS_NOVA_CONFIG_FILES", "api-paste.ini;{name}")),
    config_name="",
    companions=("api-paste.ini",),
    uwsgi_args=(),
    executable="/usr/bin/nova-api",
    # nova-api takes no address on its command line: a second config file sets it
    executable_args=("--config-file", "{config}", "--config-file", "{listen_config}"),
    listen_options=("DEFAULT", "osapi_compute_listen", "osapi_compute_listen_port"),
    # The compute API only, as under uwsgi: nova-api starts every API of enabled_apis, whose
    # default adds the metadata API, on 0.0.0.0:8775 (metadata_listen) with its own workers.
    listen_settings=(("enabled_apis", "osapi_compute"),),
    # GET / and /v2.1/ answer without a token; flavors goes through keystonemiddleware (401
    # without a valid token) and reads the API database, for any role
    authenticated_path="/v2.1/flavors",
    authenticated_headers=(),
    uses_database=True,
    uses_messaging=True,
    validates_tokens=True,
    lab=LabFacts(
        packages=("nova-api",),
        units=("nova-api", "nova-api-metadata"),
        state_dirs=("/etc/nova", "/var/lib/nova"),
        # Debian: 16 processes of 1 thread
        workers=(2, 1),
        databases=("nova_api", "nova", "nova_cell0"),
        config=(
            (
                "DEFAULT",
                (
                    ("my_ip", "{address}"),
                    ("state_path", "/var/lib/nova"),
                    # nova-api serves without a broker; nova-manage cell_v2 create_cell needs
                    # one named
                    ("transport_url", "{transport_url}"),
                ),
            ),
            ("api", (("auth_strategy", "keystone"),)),
            ("api_database", (("connection", "{db_nova_api}"),)),
            ("database", (("connection", "{db_nova}"),)),
            ("oslo_concurrency", (("lock_path", "/var/lib/nova/tmp"),)),
            ("oslo_policy", (("policy_dirs", "/etc/nova/policy.d"),)),
        ),
        authtoken=True,
        lock_dirs=("/var/lib/nova/tmp",),
        setup=(
            SetupStep((NOVA_MANAGE, "api_db", "sync")),
            SetupStep((NOVA_MANAGE, "cell_v2", "map_cell0")),
            # 2: cell1 exists already (provisioning again)
            SetupStep((NOVA_MANAGE, "cell_v2", "create_cell", "--name=cell1"), accept=(0, 2)),
            SetupStep((NOVA_MANAGE, "db", "sync")),
        ),
        catalog=CatalogEntry("nova", "compute", "/v2.1"),
    ),
)

PLACEMENT_API = ApiService(
    name="placement-api",
    port=8778,
    version_path="/",
    version_id="v1.0",
    version_statuses=(200,),
    uwsgi_ini="/etc/placement/placement-api-uwsgi.ini",
    wsgi_file="/usr/bin/placement-api",
    user="placement",
    config="/etc/placement/placement.conf",
    # placement/wsgi.py reads placement.conf from this directory, no list of files
    config_env=(("OS_PLACEMENT_CONFIG_DIR", "{dir}"),),
    config_name="placement.conf",
    companions=(),
    uwsgi_args=(),
    # pbr's generated script serves the application with wsgiref when run directly
    executable="/usr/bin/placement-api",
    executable_args=("--host", "{host}", "--port", "{port}"),
    listen_options=None,
    listen_settings=(),
    # A project's usages (microversion 1.9) are what a reader of the project may read; the
    # allocation candidates and resource providers are an admin's or a service's.
    authenticated_path="/usages?project_id={project_id}",
    authenticated_headers=(("OpenStack-API-Version", "placement 1.9"),),
    uses_database=True,
    uses_messaging=False,
    validates_tokens=True,
    lab=LabFacts(
        packages=("placement-api",),
        units=("placement-api",),
        state_dirs=("/etc/placement", "/var/lib/placement"),
        # Debian: 8 processes of 32 threads
        workers=(1, 2),
        databases=("placement",),
        config=(
            ("api", (("auth_strategy", "keystone"),)),
            ("placement_database", (("connection", "{db_placement}"),)),
        ),
        authtoken=True,
        lock_dirs=(),
        setup=(SetupStep(("/usr/bin/placement-manage", "db", "sync")),),
        catalog=CatalogEntry("placement", "placement"),
    ),
)

GLANCE_API = ApiService(
    name="glance-api",
    port=9292,
    version_path="/",
    # the v2 API's minor versions: v2.16, v2.15, ...
    version_id="v2",
    # glance answers 300 Multiple Choices with its version list
    version_statuses=(200, 300),
    uwsgi_ini="/etc/glance/glance-api-uwsgi.ini",
    wsgi_file="/usr/bin/glance-wsgi-api",
    user="glance",
    config="/etc/glance/glance-api.conf",
    # glance/common/wsgi_app.py reads glance-api-paste.ini and glance-api.conf (and
    # glance-image-import.conf if present) from this directory
    config_env=(("OS_GLANCE_CONFIG_DIR", "{dir}"),),
    config_name="glance-api.conf",
    companions=("glance-api-paste.ini",),
    uwsgi_args=(),
    executable="/usr/bin/glance-api",
    executable_args=("--config-file", "{config}", "--config-file", "{listen_config}"),
    listen_options=("DEFAULT", "bind_host", "bind_port"),
    listen_settings=(),
    authenticated_path="/v2/images?limit=1",
    authenticated_headers=(),
    uses_database=True,
    uses_messaging=False,
    validates_tokens=True,
    lab=LabFacts(
        packages=("glance-api",),
        units=("glance-api",),
        state_dirs=("/etc/glance", "/var/lib/glance"),
        workers=(1, 2),
        databases=("glance",),
        config=(
            ("database", (("connection", "{db_glance}"),)),
            ("paste_deploy", (("flavor", "keystone"),)),
            # each node's own directory: the lab lists images, it stores none
            (
                "glance_store",
                (
                    ("stores", "file"),
                    ("default_store", "file"),
                    ("filesystem_store_datadir", "/var/lib/glance/images/"),
                ),
            ),
            ("oslo_concurrency", (("lock_path", "/var/lib/glance/tmp"),)),
        ),
        authtoken=True,
        lock_dirs=("/var/lib/glance/tmp", "/var/lib/glance/images"),
        setup=(SetupStep(("/usr/bin/glance-manage", "db_sync")),),
        catalog=CatalogEntry("glance", "image"),
    ),
)

NEUTRON_SERVER = ApiService(
    name="neutron-server",
    port=9696,
    version_path="/",
    version_id="v2.0",
    version_statuses=(200,),
    uwsgi_ini="/etc/neutron/neutron-api-uwsgi.ini",
    wsgi_file="/usr/bin/neutron-api",
    user="neutron",
    config="/etc/neutron/neutron.conf",
    # neutron/server/__init__.py: the files of the list, in this directory; the ML2 plugin's
    # own file after neutron.conf, as Debian's init script passes them
    config_env=(
        ("OS_NEUTRON_CONFIG_DIR", "{dir}"),
        ("OS_NEUTRON_CONFIG_FILES", "{name};plugins/ml2/ml2_conf.ini"),
    ),
    config_name="",
    companions=("plugins/ml2/ml2_conf.ini", "api-paste.ini"),
    uwsgi_args=(),
    # the API and the RPC server in one (under uwsgi, the RPC half is neutron-rpc-server's)
    executable="/usr/bin/neutron-server",
    executable_args=(
        "--config-file",
        "{config}",
        "--config-file",
        "{dir}/plugins/ml2/ml2_conf.ini",
        "--config-file",
        "{listen_config}",
    ),
    listen_options=("DEFAULT", "bind_host", "bind_port"),
    listen_settings=(),
    authenticated_path="/v2.0/networks?limit=1",
    authenticated_headers=(),
    uses_database=True,
    uses_messaging=True,
    validates_tokens=True,
    lab=LabFacts(
        packages=("neutron-api",),
        units=("neutron-api", "neutron-rpc-server"),
        state_dirs=("/etc/neutron", "/var/lib/neutron"),
        workers=(1, 2),
        databases=("neutron",),
        config=(
            (
                "DEFAULT",
                (
                    ("core_plugin", "ml2"),
                    ("service_plugins", "router,qos"),
                    ("auth_strategy", "keystone"),
                    ("transport_url", "{transport_url}"),
                    # the lab has no nova-compute to tell of port changes
                    ("notify_nova_on_port_status_changes", "false"),
                    ("notify_nova_on_port_data_changes", "false"),
                ),
            ),
            ("database", (("connection", "{db_neutron}"),)),
            ("oslo_concurrency", (("lock_path", "/var/lib/neutron/tmp"),)),
        ),
        authtoken=True,
        lock_dirs=("/var/lib/neutron/tmp",),
        setup=(
            SetupStep(
                (
                    "/usr/bin/neutron-db-manage",
                    "--config-file",
                    "/etc/neutron/neutron.conf",
                    "--config-file",
                    "/etc/neutron/plugins/ml2/ml2_conf.ini",
                    "upgrade",
                    "heads",
                )
            ),
        ),
        catalog=CatalogEntry("neutron", "network"),
    ),
)

CINDER_API = ApiService(
    name="cinder-api",
    port=8776,
    version_path="/",
    version_id="v3",
    # cinder answers 300 Multiple Choices with its version list
    version_statuses=(200, 300),
    uwsgi_ini="/etc/cinder/cinder-api-uwsgi.ini",
    wsgi_file="/usr/bin/cinder-wsgi",
    user="cinder",
    config="/etc/cinder/cinder.conf",
    # cinder/wsgi/wsgi.py parses sys.argv: uwsgi's --pyargv names the file
    config_env=(),
    config_name="",
    companions=("api-paste.ini",),
    uwsgi_args=("--config-file", "{config}"),
    executable="/usr/bin/cinder-api",
    executable_args=("--config-file", "{config}", "--config-file", "{listen_config}"),
    listen_options=("DEFAULT", "osapi_volume_listen", "osapi_volume_listen_port"),
    listen_settings=(),
    authenticated_path="/v3/{project_id}/volumes?limit=1",
    authenticated_headers=(),
    uses_database=True,
    uses_messaging=True,
    validates_tokens=True,
    lab=LabFacts(
        packages=("cinder-api",),
        units=("cinder-api",),
        state_dirs=("/etc/cinder", "/var/lib/cinder"),
        workers=(1, 2),
        databases=("cinder",),
        config=(
            (
                "DEFAULT",
                (
                    ("auth_strategy", "keystone"),
                    ("my_ip", "{address}"),
                    ("transport_url", "{transport_url}"),
                    ("state_path", "/var/lib/cinder"),
                ),
            ),
            ("database", (("connection", "{db_cinder}"),)),
            ("oslo_concurrency", (("lock_path", "/var/lib/cinder/tmp"),)),
        ),
        authtoken=True,
        lock_dirs=("/var/lib/cinder/tmp",),
        setup=(SetupStep(("/usr/bin/cinder-manage", "db", "sync")),),
        catalog=CatalogEntry("cinderv3", "volumev3", "/v3/%(project_id)s"),
    ),
)

# In the order they start: keystone first (the others validate tokens with it).
SERVICES: tuple[ApiService, ...] = (
    KEYSTONE,
    PLACEMENT_API,
    NOVA_API,
    GLANCE_API,
    NEUTRON_SERVER,
    CINDER_API,
)
NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
# The identity service: the one whose token requests the others' deep checks and the lab's
# registrations use.
IDENTITY = KEYSTONE


def service_named(name: str) -> ApiService:
    for service in SERVICES:
        if service.name == name:
            return service
    raise UnknownService(f"unknown API service {name!r} (known: {', '.join(sorted(NAMES))})")


def packages() -> list[str]:
    """The Debian packages of every API service, in the catalog's order."""
    return list(dict.fromkeys(p for service in SERVICES for p in service.lab.packages))


if __name__ == "__main__":
    # For what is not Python: the Makefile's host packages, the Debian package's Suggests,
    # a public Vagrant box's provisioning. One package per line.
    import sys

    sys.stdout.write("".join(f"{package}\n" for package in packages()))
