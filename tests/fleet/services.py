"""Real PostgreSQL, Redis and nginx as ordinary child processes, for tests of a tingshuo fleet.

Each service keeps everything (data, sockets, logs, pid and temp files) under a directory the caller
gives (a pytest ``tmp_path``), listens on 127.0.0.1 on a free port picked once, and has the same small
shape: :meth:`Service.start` returns once the service answers (or raises with its log's tail),
:meth:`Service.stop` asks it to stop and kills it if it does not, and :meth:`Service.restart` is the
two on the same port and data directory, as a test that checks recovery needs. Nothing is mocked:
these are Debian's binaries (``apt-get install postgresql redis-server nginx``; scripts/test.sh
installs them), and a missing one fails the test with that command, never skips it.

PostgreSQL refuses to run as root, so under root it runs as Debian's ``postgres`` system user, which
must reach the data directory: pytest's temporary directories are private to root (mode 0700), so
the directories above the data directory that this user cannot search get the search bit for others
(``o+x``: enter, not list). pytest makes its own ``/tmp/pytest-of-root`` private again at its next run.

:class:`NginxServer` runs the documented front door, ``deploy/nginx/tingshuo.conf``, with only its
``listen`` line and its upstream ``server`` lines rewritten (:func:`render_site`), inside a minimal
main configuration, so the tests exercise the very file operators deploy.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SITE_TEMPLATE = DEPLOY / "nginx" / "tingshuo.conf"
INSTALL_HINT = "apt-get install postgresql redis-server nginx"
LOG_TAIL_LINES = 40
POLL_S = 0.05
LOCALHOST = "127.0.0.1"
FALLBACK_DIRS = (Path("/usr/sbin"), Path("/usr/bin"), Path("/usr/local/bin"))
"""Searched after PATH: a user's PATH often lacks /usr/sbin (nginx)."""


class ServiceError(RuntimeError):
    pass


class MissingBinaryError(ServiceError):
    pass


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick for 127.0.0.1:0)."""
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return s.getsockname()[1]


def _postgres_bin_dirs() -> list[Path]:
    """Debian's /usr/lib/postgresql/VERSION/bin, newest version first."""
    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)

    return sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)


def find_binary(name: str, extra_dirs: Sequence[Path] = ()) -> Path:
    """``name`` in ``extra_dirs``, else on PATH, else in /usr/sbin, /usr/bin or /usr/local/bin (not on
    every PATH); a clear error naming the packages to install when nowhere."""
    dirs = [*extra_dirs, *FALLBACK_DIRS]
    for directory in [*extra_dirs, None, *FALLBACK_DIRS]:
        if directory is None:
            found = shutil.which(name)
            if found:
                return Path(found)
            continue
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingBinaryError(
        f"{name} is not installed (looked on PATH and in {', '.join(map(str, dirs))}): "
        f"{INSTALL_HINT} (scripts/test.sh does it when run as root)")


def _tcp_connects(port: int, host: str = LOCALHOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _grant_search(path: Path, uid: int, gid: int) -> list[Path]:
    """Lets user ``uid`` (group ``gid``) enter ``path`` and every directory above it, adding only the
    search bit it lacks (of the owner, group or others class that applies to it). Returns what changed."""
    changed = []
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            os.chmod(directory, stat.S_IMODE(st.st_mode) | bit)
            changed.append(directory)
    return changed


class Service:
    """One server process: started, probed until ready, stopped; same port and files on restart."""

    name = "service"
    stop_signal = signal.SIGTERM
    start_timeout_s = 60.0
    stop_timeout_s = 20.0

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = self.root / f"{self.name}.log"
        self.start_seconds: float | None = None
        """How long the last :meth:`start` took, until the service answered."""
        self._process: subprocess.Popen[bytes] | None = None

    host = LOCALHOST

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # What a service defines.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Before each start (first-time initialisation goes here)."""

    def _popen_kwargs(self) -> dict:
        return {}

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_ready(self, deadline: float) -> None:
        """Once it answers, before :meth:`start` returns (PostgreSQL creates its database here)."""

    # The shape every service shares.
    def start(self) -> None:
        if self.running:
            return
        began = time.monotonic()
        deadline = began + self.start_timeout_s
        self._prepare()
        command = self._command()
        with self.log_path.open("ab") as log:
            log.write(f"--- starting {self.name} on port {self.port}: {' '.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True, **self._popen_kwargs())
        try:
            while not self._ready():
                code = self._process.poll()
                if code is not None:
                    raise ServiceError(f"{self.name} exited with status {code} while starting{self._tail()}")
                if time.monotonic() > deadline:
                    raise ServiceError(f"{self.name} did not answer on port {self.port} within "
                                       f"{self.start_timeout_s:.0f} s{self._tail()}")
                time.sleep(POLL_S)
            self._after_ready(deadline)
        except BaseException:
            self._kill()
            raise
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """The service's own graceful stop signal; SIGKILL to its whole process group after
        ``stop_timeout_s``. Returns once it has exited."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            try:
                os.kill(process.pid, self.stop_signal)
                process.wait(self.stop_timeout_s)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                self._kill()
        self._kill()  # anything its group left behind (none, normally)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _tail(self) -> str:
        tail = self.log_tail()
        return f"; last lines of {self.log_path}:\n{tail}" if tail else f"; {self.log_path} is empty"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root}, port={self.port}, running={self.running})"


class PostgresServer(Service):
    """PostgreSQL 15 (Debian's) with a database ``tingshuo`` owned by a user ``tingshuo``.

    ``initdb`` runs on the first start; the data directory (``root/data``) outlives :meth:`restart`.
    TCP on 127.0.0.1 only (password, SCRAM), a unix socket in ``root/socket`` (trust), fsync off.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit
    database = "tingshuo"
    user = "tingshuo"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.password = secrets.token_hex(12)
        self._superuser_password = secrets.token_hex(12)
        self.permission_changes: list[Path] = []
        """Directories that got a search bit so the ``postgres`` user reaches the data (as root)."""
        bin_dirs = [d for d in _postgres_bin_dirs() if (d / "postgres").is_file()]
        self.postgres = bin_dirs[0] / "postgres" if bin_dirs else find_binary("postgres")
        bin_dir = self.postgres.resolve().parent  # initdb and psql beside the real binary, not a link
        self.initdb, self.psql_binary, self.pg_isready = (find_binary(tool, [bin_dir])
                                                          for tool in ("initdb", "psql", "pg_isready"))
        self._account = self._server_account()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    @property
    def superuser_url(self) -> str:
        return f"postgresql://postgres:{self._superuser_password}@{self.host}:{self.port}/postgres"

    @staticmethod
    def _server_account() -> pwd.struct_passwd | None:
        """Who runs the server: ``postgres`` when we are root (created if missing), else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
                            "/var/lib/postgresql", "--shell", "/usr/sbin/nologin", "postgres"],
                           check=True, capture_output=True)
            return pwd.getpwnam("postgres")

    def _popen_kwargs(self) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        kwargs: dict = {"env": env, "cwd": self.data_dir}
        if self._account is not None:
            env["HOME"] = str(self.data_dir)
            kwargs.update(user=self._account.pw_uid, group=self._account.pw_gid, extra_groups=[])
        return kwargs

    def _own(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _prepare(self) -> None:
        for directory in (self.data_dir, self.socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            self._own(directory)
        if self._account is not None:
            self.permission_changes += _grant_search(self.data_dir, self._account.pw_uid, self._account.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        password_file = self.root / "superuser-password"
        password_file.write_text(self._superuser_password + "\n")
        password_file.chmod(0o600)
        self._own(password_file)
        try:
            result = subprocess.run(
                [str(self.initdb), "--pgdata", str(self.data_dir), "--username", "postgres",
                 "--pwfile", str(password_file), "--auth-local", "trust", "--auth-host", "scram-sha-256",
                 "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions"],
                check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, **self._popen_kwargs())
        finally:
            password_file.unlink(missing_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"--- initdb (status {result.returncode})\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise ServiceError(f"initdb failed with status {result.returncode}{self._tail()}")

    def _command(self) -> list[str]:
        # A unix socket path longer than 107 bytes cannot be bound: then TCP alone.
        sockets = str(self.socket_dir) if len(str(self.socket_dir)) + len("/.s.PGSQL.65535") < 100 else ""
        settings = {"listen_addresses": self.host, "port": self.port, "unix_socket_directories": sockets,
                    "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                    "logging_collector": "off", "max_connections": 50}
        command = [str(self.postgres), "-D", str(self.data_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _ready(self) -> bool:
        probe = subprocess.run([str(self.pg_isready), "--quiet", "--host", self.host, "--port", str(self.port),
                                "--dbname", "postgres", "--timeout", "2"],
                               check=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        return probe.returncode == 0

    def psql(self, sql: str, *, superuser: bool = False, database: str | None = None,
             timeout: float = 30) -> str:
        """Runs ``sql`` through psql over TCP (as ``tingshuo``, or the superuser); its output, unaligned."""
        user, password = ("postgres", self._superuser_password) if superuser else (self.user, self.password)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
        result = subprocess.run(
            [str(self.psql_binary), "--no-psqlrc", "--quiet", "--no-align", "--tuples-only", "--set", "ON_ERROR_STOP=1",
             "--host", self.host, "--port", str(self.port), "--username", user,
             "--dbname", database or (self.database if not superuser else "postgres"), "--command", sql],
            check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise ServiceError(f"psql {sql!r} as {user} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _after_ready(self, deadline: float) -> None:
        exists = self.psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{self.user}'", superuser=True)
        if not exists:
            self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'", superuser=True)
            self.psql(f"CREATE DATABASE {self.database} OWNER {self.user}", superuser=True)
        # Ready means a real login to the database the tests use works.
        while True:
            try:
                if self.psql("SELECT 1") == "1":
                    return
            except ServiceError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(POLL_S)


class RedisServer(Service):
    """redis-server on 127.0.0.1, no persistence (``--save ""``): a restart starts empty."""

    name = "redis"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.redis_server = find_binary("redis-server")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _command(self) -> list[str]:
        return [str(self.redis_server), "--port", str(self.port), "--bind", self.host, "--dir", str(self.root),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]

    def _ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def render_site(template: str, *, listen: str, upstreams: Sequence[str]) -> str:
    """The documented site with its ``listen`` directive (the first after the ``# listen:`` comment)
    set to ``listen``, and the upstream ``server`` lines between ``# workers:`` and ``# end workers``
    replaced by one per ``upstreams`` address, each keeping the documented lines' parameters
    (``max_fails``, ``fail_timeout``). Every other line stays as documented."""
    if not upstreams:
        raise ValueError("render_site needs at least one upstream")
    lines = template.splitlines()
    out: list[str] = []
    in_workers = False
    saw_workers = saw_end = False
    parameters = None
    indent = "    "
    wrote_servers = False
    listen_pending = False
    listen_done = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# workers:"):
            in_workers, saw_workers = True, True
            out.append(line)
            continue
        if in_workers:
            server = re.match(r"^(\s*)server\s+\S+(.*);\s*$", line)
            if server:
                if parameters is None:
                    indent, parameters = server.group(1), server.group(2)
                continue
            if stripped == "# end workers":
                if parameters is None:
                    raise ValueError("no `server` line between `# workers:` and `# end workers`")
                out += [f"{indent}server {address}{parameters};" for address in upstreams]
                out.append(line)
                in_workers, saw_end, wrote_servers = False, True, True
                continue
            out.append(line)
            continue
        if stripped.startswith("# listen:") and not listen_done:
            listen_pending = True
            out.append(line)
            continue
        if listen_pending and re.match(r"^\s*listen\s+[^;]+;\s*$", line):
            out.append(re.sub(r"listen\s+[^;]+;", f"listen {listen};", line))
            listen_pending, listen_done = False, True
            continue
        out.append(line)
    if not (saw_workers and saw_end and wrote_servers):
        raise ValueError("the site has no `# workers:` ... `# end workers` block of upstream servers")
    if not listen_done:
        raise ValueError("the site has no `listen` directive after a `# listen:` comment")
    return "\n".join(out) + "\n"


MAIN_CONFIG = """\
# Written by tests/fleet/services.py: the documented site (tingshuo.conf, rendered from
# deploy/nginx/tingshuo.conf) inside a minimal main configuration, every path under this directory.
{user}worker_processes 1;
pid "{root}/nginx.pid";
error_log "{root}/logs/error.log" notice;
worker_shutdown_timeout 5s;

events {{
    worker_connections 512;
}}

http {{
    log_format fleet '$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status';
    access_log "{root}/logs/access.log" fleet;
    client_body_temp_path "{root}/temp/client_body";
    proxy_temp_path "{root}/temp/proxy";
    fastcgi_temp_path "{root}/temp/fastcgi";
    uwsgi_temp_path "{root}/temp/uwsgi";
    scgi_temp_path "{root}/temp/scgi";
    include "{root}/tingshuo.conf";
}}
"""


class NginxServer(Service):
    """nginx running the documented front door (:data:`SITE_TEMPLATE`) in front of ``upstreams``."""

    name = "nginx"
    stop_signal = signal.SIGQUIT  # graceful: finish requests in flight (at most worker_shutdown_timeout)

    def __init__(self, root: Path, upstreams: Sequence[str], *, site: Path = SITE_TEMPLATE) -> None:
        super().__init__(root)
        self.nginx = find_binary("nginx")
        self.site = site
        self.upstreams = list(upstreams)
        self.config_path = self.root / "nginx.conf"
        self.site_path = self.root / "tingshuo.conf"
        self.access_log = self.root / "logs" / "access.log"
        self.error_log = self.root / "logs" / "error.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/realtime"

    def _write_config(self) -> None:
        for directory in ("logs", "temp"):
            (self.root / directory).mkdir(exist_ok=True)
        self.site_path.write_text(render_site(self.site.read_text(), listen=self.address, upstreams=self.upstreams))
        # Under root the workers would run as nobody, who cannot enter pytest's private directories.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.config_path.write_text(MAIN_CONFIG.format(user=user, root=self.root))

    def _nginx(self, *args: str) -> list[str]:
        return [str(self.nginx), "-p", f"{self.root}/", "-c", str(self.config_path), "-e", str(self.error_log), *args]

    def check_config(self) -> str:
        """``nginx -t`` on the configuration as written now; its output, or an error with it."""
        self._write_config()
        result = subprocess.run(self._nginx("-t"), check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=30)
        if result.returncode != 0:
            raise ServiceError(f"nginx -t failed on {self.site_path}:\n{result.stderr}")
        return result.stderr

    def _prepare(self) -> None:
        self._write_config()

    def _command(self) -> list[str]:
        return self._nginx("-g", "daemon off;")

    def _ready(self) -> bool:
        return _tcp_connects(self.port)

    def _workers(self) -> set[int]:
        """The worker processes of the running master (from /proc)."""
        master = self.pid
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == master:
                found.add(int(entry.name))
        return found

    def reload(self, upstreams: Sequence[str], timeout_s: float = 30.0) -> None:
        """Re-renders the site for ``upstreams`` and reloads nginx (``nginx -s reload``); returns once
        the old workers have gone and new ones serve."""
        if not self.running:
            raise ServiceError("nginx is not running")
        previous = self.upstreams
        self.upstreams = list(upstreams)
        try:
            self.check_config()
        except ServiceError:
            self.upstreams = previous
            self._write_config()
            raise
        old = self._workers()
        result = subprocess.run(self._nginx("-s", "reload"), check=False, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=30)
        if result.returncode != 0:
            raise ServiceError(f"nginx -s reload failed: {result.stderr}{self._tail()}")
        deadline = time.monotonic() + timeout_s
        while True:
            workers = self._workers()
            if workers and not workers & old:
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"nginx did not replace its workers within {timeout_s:.0f} s after a reload"
                                   f"{self._error_tail()}")
            time.sleep(POLL_S)

    def _error_tail(self) -> str:
        try:
            lines = self.error_log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except FileNotFoundError:
            return ""
        return f"; last lines of {self.error_log}:\n" + "\n".join(lines)

    def _tail(self) -> str:
        return super()._tail() + self._error_tail()

    def access_log_lines(self) -> list[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
