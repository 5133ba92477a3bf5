"""Real database servers for the instrumentation tests: PostgreSQL, MariaDB, Redis and RabbitMQ,
each from Debian's packages (tests/support/install-dbservers.sh installs them), started on a free
127.0.0.1 port in a fresh temporary directory and stopped afterwards. No mocks, no Docker, no
system service: every server is a child process of the test process.

Usage::

    with Postgres() as pg:
        psycopg.connect(pg.dsn)

Each class has ``start()``/``stop()`` (and is a context manager), ``host``, ``port``, ``user``,
``password``, ``database`` (where the server has such a thing), a URL (``dsn``/``url``) and
``failure_sections()`` (the server's log, for failed test reports: see tests/conftest.py).
``start()`` raises ``Unavailable`` when a server is not installed (RabbitMQ also when it does not
come up: its tests are optional), ``RuntimeError`` with the log's tail when a server fails.

Speed: the data directories live on tmpfs (/dev/shm, when writable; ``FERROTEL_DB_TMPDIR``
overrides), durability is switched off (no fsync, no doublewrite, no binary log, no persistence)
and buffers are small.

Nothing is left behind: ``stop()`` ends the server's whole process group (its graceful shutdown
signal, then SIGKILL after a timeout) and removes the directory; an ``atexit`` handler stops whatever a session
that ended abnormally did not. If the test process is killed outright (SIGKILL), every server gets
SIGTERM from the kernel (``setpriv --pdeathsig``), and the next start removes the directories of
test processes that no longer exist. (The parent-death signal follows the *thread* that started the
server: start servers from the main thread, as pytest's fixtures are.)
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

from support.processes import free_port

HOST = "127.0.0.1"
INSTALL_HINT = "run tests/support/install-dbservers.sh"
_PORT_TAKEN = re.compile(r"address already in use|eaddrinuse|could not bind|bind\(\) on", re.IGNORECASE)
_PREFIX = "ferrotel-db-"


class Unavailable(Exception):
    """The server cannot run here (not installed, or an optional server that did not come up)."""


class _PortTaken(Exception):
    """The server lost the race for its port (another process bound it first): try another."""


# ----------------------------------------------------------------------------------------------
# helpers


def _which(*names: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/usr/bin", "/sbin")) -> str | None:
    """The first of `names` found on PATH or in `extra_dirs` (/usr/sbin is not on a user's PATH)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in extra_dirs:
            path = os.path.join(d, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def _base_dir() -> str:
    """Where the servers' directories go: tmpfs when possible (several times faster to initialise)."""
    override = os.environ.get("FERROTEL_DB_TMPDIR")
    if override:
        return override
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_swept = False


def _sweep_stale_dirs(base: str) -> None:
    """Remove server directories whose test process is gone (it was killed before cleaning up)."""
    global _swept
    if _swept:
        return
    _swept = True
    for path in glob.glob(os.path.join(base, _PREFIX + "*")):
        try:
            owner = int(Path(path, "owner.pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, max_lines: int = 200, max_chars: int = 20000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log {path}: {exc}>"
    text = "\n".join(text.splitlines()[-max_lines:])
    return text[-max_chars:]


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=timeout).close()
        return True
    except OSError:
        return False


_SETPRIV = shutil.which("setpriv") or ("/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None)
_live: set["_Server"] = set()
_live_lock = threading.Lock()


def _stop_all() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_stop_all)


# ----------------------------------------------------------------------------------------------
# the common part


class _Server:
    kind = "server"
    host = HOST
    user: str | None = None
    password: str | None = None
    database: str | None = None
    start_timeout = 30.0  # seconds from launch to ready
    stop_timeout = 20.0  # seconds from the graceful signal to SIGKILL
    stop_signal = signal.SIGTERM
    port_attempts = 3
    port_precheck = True  # a bare TCP connect before each probe (cheaper than a client process)

    def __init__(self):
        self.port: int | None = None
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None  # start() to ready, initialisation included
        self.timings: dict[str, float] = {}
        self._run_as: pwd.struct_passwd | None = None  # None: the current user
        self._last_sections: list[tuple[str, str]] = []

    # -- subclass hooks
    def _check_installed(self) -> None:
        raise NotImplementedError

    def _prepare(self) -> None:
        """One-time initialisation of self.dir (initdb, install-db...)."""

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _launch(self) -> None:
        raise NotImplementedError

    def _probe(self) -> bool:
        """A real protocol-level check, once the TCP port accepts connections."""
        return True

    def _after_ready(self) -> None:
        """Set-up that needs the running server (users, databases)."""

    def _after_stop(self) -> None:
        """Clean-up of helper processes (RabbitMQ's epmd)."""

    def _log_files(self) -> list[Path]:
        return [self.dir / "prepare.log", self.dir / "server.log"] if self.dir else []

    # -- public API
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "_Server":
        if self.running:
            return self
        self._check_installed()
        t0 = time.monotonic()
        base = _base_dir()
        _sweep_stale_dirs(base)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{self.kind}-", dir=base))
        (self.dir / "owner.pid").write_text(str(os.getpid()))
        with _live_lock:
            _live.add(self)
        try:
            if self._run_as is not None:
                os.chown(self.dir, self._run_as.pw_uid, self._run_as.pw_gid)
            self._prepare()
            t1 = time.monotonic()
            self.timings["prepare"] = t1 - t0
            for attempt in range(1, self.port_attempts + 1):
                self._pick_ports()
                self._launch()
                try:
                    self._wait_ready()
                    break
                except _PortTaken:
                    self._terminate()
                    self._after_stop()
                    if attempt == self.port_attempts:
                        raise RuntimeError(f"{self.kind}: its port was taken {attempt} times\n{self._log_text()}") from None
            t2 = time.monotonic()
            self.timings["launch"] = t2 - t1
            self._after_ready()
            self.timings["setup"] = time.monotonic() - t2
            self.startup_seconds = time.monotonic() - t0
        except BaseException:
            self._last_sections = self.failure_sections()
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.dir is not None and self.proc is not None:
            self._last_sections = self.failure_sections()
        try:
            self._terminate()
        finally:
            try:
                self._after_stop()
            finally:
                if self.dir is not None:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    self.dir = None
                with _live_lock:
                    _live.discard(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def failure_sections(self) -> list[tuple[str, str]]:
        if self.dir is None:
            return list(self._last_sections)
        return [
            (f"{self.kind} {path.name} ({path})", _tail(path))
            for path in self._log_files()
            if path.exists()
        ]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} {'running' if self.running else 'stopped'}>"

    # -- machinery
    def _env(self, **extra: str) -> dict:
        env = dict(os.environ)
        if self._run_as is not None:
            env.update(HOME=str(self.dir), USER=self._run_as.pw_name, LOGNAME=self._run_as.pw_name)
        env.update(extra)
        return env

    def _user_kwargs(self) -> dict:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _run(self, cmd: list[str], what: str, timeout: float = 60, env: dict | None = None, as_owner: bool = True):
        """Run a one-shot command, its output appended to prepare.log; RuntimeError when it fails."""
        log_path = self.dir / "prepare.log"
        with open(log_path, "ab") as log:
            log.write(("$ " + " ".join(cmd) + "\n").encode())
            log.flush()
            try:
                result = subprocess.run(
                    cmd,
                    cwd=str(self.dir),
                    env=env or self._env(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    **(self._user_kwargs() if as_owner else {}),
                )
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{self.kind}: {what} did not finish within {timeout}s\n{_tail(log_path)}") from None
        if result.returncode != 0:
            raise RuntimeError(f"{self.kind}: {what} failed (exit {result.returncode})\n{_tail(log_path)}")

    def _spawn(self, cmd: list[str], log_name: str = "server.log", env: dict | None = None) -> subprocess.Popen:
        """Start a long-running process in its own process group, killed by the kernel if we die."""
        if _SETPRIV:
            cmd = [_SETPRIV, "--pdeathsig", "TERM", "--", *cmd]
        with open(self.dir / log_name, "ab") as log:
            return subprocess.Popen(
                cmd,
                cwd=str(self.dir),
                env=env or self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._user_kwargs(),
            )

    def _log_text(self) -> str:
        return "\n".join(f"--- {title}\n{text}" for title, text in self.failure_sections())

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                log = self._log_text()
                if _PORT_TAKEN.search(log):
                    raise _PortTaken()
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode} before it was ready\n{log}")
            if (not self.port_precheck or _port_open(self.port)) and self._probe():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.kind} not ready on {self.host}:{self.port} after {self.start_timeout:.0f}s\n{self._log_text()}"
                )
            time.sleep(0.05)

    def _terminate(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        t0 = time.monotonic()
        _end_group(proc, self.stop_signal, self.stop_timeout)
        self.timings["stop"] = time.monotonic() - t0


def _end_group(proc: subprocess.Popen, sig: int, timeout: float) -> None:
    """Send `sig` (the server's graceful shutdown) to `proc`, the leader of its process group; wait
    up to `timeout`; SIGKILL whatever is left of the group (the server's children, or everything if
    it did not stop in time); reap `proc`. The leader, not the group, gets the graceful signal: a
    server stops its own children in order (PostgreSQL's backends, RabbitMQ's Erlang VM)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:  # whatever is left of the group (a server's own children)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


# ----------------------------------------------------------------------------------------------
# PostgreSQL


def _postgres_bin_dir() -> str | None:
    override = os.environ.get("FERROTEL_PG_BIN")
    if override:
        return override
    candidates = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        version = os.path.basename(os.path.dirname(d))
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            key = tuple(int(p) for p in version.split(".") if p.isdigit())
            candidates.append((key, d))
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


class Postgres(_Server):
    """PostgreSQL with a password user `user` owning database `database`, reachable on 127.0.0.1
    (scram-sha-256); the superuser `postgres` is trusted on the Unix socket in the server's
    directory. initdb refuses root: as root, the server runs as the `postgres` system user."""

    kind = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def __init__(self, user: str = "ferrotel", password: str = "ferrotel-pw", database: str = "ferrotel"):
        super().__init__()
        self.user, self.password, self.database = user, password, database
        self.bin_dir: str | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"

    url = dsn

    @property
    def socket_dir(self) -> str:
        return str(self.dir)

    def _env(self, **extra: str) -> dict:
        # No PGHOST, PGPASSWORD, PGOPTIONS... from the caller's environment in our tools' way.
        return {k: v for k, v in super()._env(**extra).items() if not k.startswith("PG")}

    def _tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def _check_installed(self) -> None:
        self.bin_dir = _postgres_bin_dir()
        missing = [t for t in ("initdb", "postgres", "psql", "pg_isready") if not (self.bin_dir and os.access(self._tool(t), os.X_OK))]
        if missing:
            raise Unavailable(f"PostgreSQL is not installed ({', '.join(missing)} not found): {INSTALL_HINT}")
        if os.geteuid() == 0:
            try:
                self._run_as = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable(f"PostgreSQL cannot run as root and there is no `postgres` user: {INSTALL_HINT}") from None

    def _prepare(self) -> None:
        data = self.dir / "data"
        self._run(
            [self._tool("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            "initdb",
        )
        (data / "pg_hba.conf").write_text(
            "# written by tests/support/databases.py\n"
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _launch(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "32MB",
            "max_connections": "100",
            "max_wal_size": "256MB",
            "jit": "off",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        cmd = [self._tool("postgres"), "-D", str(self.dir / "data"), "-p", str(self.port)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        self.proc = self._spawn(cmd)

    def _probe(self) -> bool:
        result = subprocess.run(
            [self._tool("pg_isready"), "-q", "-h", HOST, "-p", str(self.port), "-t", "2", "-d", "postgres"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
        )
        return result.returncode == 0

    def _after_ready(self) -> None:
        def literal(s: str) -> str:
            return "'" + s.replace("'", "''") + "'"

        def ident(s: str) -> str:
            return '"' + s.replace('"', '""') + '"'

        self._run(
            [self._tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir), "-p", str(self.port),
             "-U", "postgres", "-d", "postgres",
             "-c", f"CREATE ROLE {ident(self.user)} LOGIN PASSWORD {literal(self.password)}",
             "-c", f"CREATE DATABASE {ident(self.database)} OWNER {ident(self.user)}"],
            "creating the user and the database",
        )


# ----------------------------------------------------------------------------------------------
# MariaDB

_INNODB_FAST = [
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=16M",
    "--innodb-doublewrite=0",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-flush-method=fsync",  # no O_DIRECT (tmpfs)
    "--innodb-use-native-aio=0",  # no io_uring/libaio: nothing to fail in a restricted kernel
    "--skip-log-bin",
]


class MariaDB(_Server):
    """MariaDB with a password user `user`@'%' owning database `database` (TCP on 127.0.0.1 only;
    root has no password on the Unix socket `socket_path`). Runs as the current user (root too,
    with --user=root)."""

    kind = "mariadb"
    port_precheck = False  # a bare connect is logged as an aborted connection; mariadb-admin fails fast anyway

    def __init__(self, user: str = "ferrotel", password: str = "ferrotel-pw", database: str = "ferrotel"):
        super().__init__()
        self.user, self.password, self.database = user, password, database
        self._server = self._install_db = self._admin = None

    @property
    def url(self) -> str:
        return f"mysql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"

    dsn = url

    @property
    def socket_path(self) -> str:
        return str(self.dir / "mysqld.sock")

    def _check_installed(self) -> None:
        self._server = _which("mariadbd", "mysqld")
        self._install_db = _which("mariadb-install-db", "mysql_install_db")
        self._admin = _which("mariadb-admin", "mysqladmin")
        missing = [n for n, p in (("mariadbd", self._server), ("mariadb-install-db", self._install_db), ("mariadb-admin", self._admin)) if not p]
        if missing:
            raise Unavailable(f"MariaDB is not installed ({', '.join(missing)} not found): {INSTALL_HINT}")

    def _user_option(self) -> list[str]:
        # --user only means something to root (mariadbd refuses to run as root without it).
        return [f"--user={pwd.getpwuid(os.geteuid()).pw_name}"] if os.geteuid() == 0 else []

    def _prepare(self) -> None:
        (self.dir / "tmp").mkdir()
        self._run(
            [self._install_db, "--no-defaults", "--auth-root-authentication-method=normal", f"--datadir={self.dir / 'data'}",
             *self._user_option(), "--skip-test-db", "--skip-name-resolve", *_INNODB_FAST],
            "mariadb-install-db",
        )

        def literal(s: str) -> str:
            return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"

        def ident(s: str) -> str:
            return "`" + s.replace("`", "``") + "`"

        # Run by the server at every start, before it serves clients: idempotent.
        (self.dir / "init.sql").write_text(
            f"CREATE DATABASE IF NOT EXISTS {ident(self.database)} CHARACTER SET utf8mb4;\n"
            f"CREATE USER IF NOT EXISTS {literal(self.user)}@'%' IDENTIFIED BY {literal(self.password)};\n"
            f"GRANT ALL PRIVILEGES ON {ident(self.database)}.* TO {literal(self.user)}@'%';\n"
        )

    def _launch(self) -> None:
        self.proc = self._spawn(
            [self._server, "--no-defaults", f"--datadir={self.dir / 'data'}", f"--port={self.port}", f"--bind-address={HOST}",
             f"--socket={self.socket_path}", f"--pid-file={self.dir / 'mysqld.pid'}", f"--tmpdir={self.dir / 'tmp'}",
             *self._user_option(), "--skip-name-resolve", f"--init-file={self.dir / 'init.sql'}",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
             "--performance-schema=OFF", "--max-connections=200", *_INNODB_FAST]
        )

    def _probe(self) -> bool:
        # `status` (not `ping`, which succeeds even when access is denied) as the test user: ready
        # means the init file has run too.
        result = subprocess.run(
            [self._admin, "--no-defaults", "--protocol=tcp", "-h", HOST, "-P", str(self.port), "-u", self.user,
             f"--password={self.password}", "--connect-timeout=2", "status"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
        )
        return result.returncode == 0


# ----------------------------------------------------------------------------------------------
# Redis


class Redis(_Server):
    """redis-server without persistence; no password (`user`/`password` are None), database 0."""

    kind = "redis"
    database = 0

    def __init__(self):
        super().__init__()
        self._server = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.database}"

    dsn = url

    def _check_installed(self) -> None:
        self._server = _which("redis-server")
        if not self._server:
            raise Unavailable(f"Redis is not installed (redis-server not found): {INSTALL_HINT}")

    def _launch(self) -> None:
        self.proc = self._spawn(
            [self._server, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--daemonize", "no", "--logfile", "", "--protected-mode", "yes"]
        )

    def _probe(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


# ----------------------------------------------------------------------------------------------
# RabbitMQ

_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def _rabbitmq_server_script() -> str | None:
    # Debian's /usr/sbin/rabbitmq-server is a wrapper that su's to the rabbitmq user and logs to
    # /var/log/rabbitmq: run the real script beside it.
    for path in ("/usr/lib/rabbitmq/bin/rabbitmq-server",):
        if os.access(path, os.X_OK):
            return path
    found = _which("rabbitmq-server")
    if found and os.path.basename(os.path.realpath(found)) == "rabbitmq-script-wrapper":
        real = os.path.join(os.path.dirname(os.path.realpath(found)), "rabbitmq-server")
        return real if os.access(real, os.X_OK) else None
    return found


class RabbitMQ(_Server):
    """A RabbitMQ node `ferrotel-test-<port>@localhost` with user `user`/`password` on vhost "/",
    its own epmd (on a free port, 127.0.0.1), its Erlang distribution port on 127.0.0.1 too, and
    no plugins. RabbitMQ is optional: whatever keeps it from coming up within `start_timeout`
    raises Unavailable, with the reason and the log's tail."""

    kind = "rabbitmq"
    # 90 s: ~11 s on an idle 2-core VM, over 30 s seen while the pyver suite shares the cores.
    start_timeout = float(os.environ.get("FERROTEL_RABBITMQ_TIMEOUT", "90"))
    stop_timeout = 30.0
    virtual_host = "/"

    def __init__(self, user: str = "ferrotel", password: str = "ferrotel-pw"):
        super().__init__()
        self.user, self.password = user, password
        self.dist_port: int | None = None
        self.epmd_port: int | None = None
        self.epmd_proc: subprocess.Popen | None = None
        self.env: dict | None = None  # the node's environment: rabbitmqctl -n <nodename> works with it
        self._script = self._epmd = None

    @property
    def nodename(self) -> str:
        return f"ferrotel-test-{self.port}@localhost"

    @property
    def url(self) -> str:
        return f"amqp://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(self.virtual_host, safe='')}"

    dsn = url

    def _check_installed(self) -> None:
        self._script = _rabbitmq_server_script()
        self._epmd = _which("epmd") or next(iter(sorted(glob.glob("/usr/lib/erlang/erts-*/bin/epmd"), reverse=True)), None)
        if not self._script:
            raise Unavailable(f"RabbitMQ is not installed (rabbitmq-server not found): {INSTALL_HINT}")
        if not self._epmd:
            raise Unavailable(f"RabbitMQ's Erlang has no epmd: {INSTALL_HINT}")

    def start(self) -> "RabbitMQ":
        try:
            return super().start()
        except RuntimeError as exc:
            # A skip reason: the first line and the log's last lines, not the whole log.
            head, *rest = str(exc).splitlines() or [""]
            last = [line.strip() for line in rest if line.strip() and not line.startswith("--- ")][-4:]
            if "not ready" in head:
                head += " (FERROTEL_RABBITMQ_TIMEOUT=<seconds> waits longer)"
            raise Unavailable(f"RabbitMQ did not come up: {head}" + (" | log: " + " | ".join(last) if last else "")) from None

    def _log_files(self) -> list[Path]:
        if self.dir is None:
            return []
        d = self.dir
        return [d / "prepare.log", d / "epmd.log", d / "server.log", *sorted((d / "log").glob("*.log"))]

    def _prepare(self) -> None:
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("# empty: ignore /etc/rabbitmq/rabbitmq-env.conf\n")
        (self.dir / "advanced.config").write_text("[].\n")

    def _pick_ports(self) -> None:
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.port, self.dist_port, self.epmd_port = sorted(ports)

    def _launch(self) -> None:
        d = self.dir
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {HOST}:{self.port}\n"
            f"default_user = {self.user}\n"
            f"default_pass = {self.password}\n"
            "default_vhost = /\n"
            "loopback_users = none\n"
            "log.file.level = info\n"
            "log.console = false\n"
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env = dict(
            base,
            HOME=str(d),  # the Erlang cookie goes there
            RABBITMQ_CONF_ENV_FILE=str(d / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(d / "rabbitmq"),  # + ".conf"
            RABBITMQ_ADVANCED_CONFIG_FILE=str(d / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(d / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(d / "mnesia"),
            RABBITMQ_LOG_BASE=str(d / "log"),
            RABBITMQ_PID_FILE=str(d / "rabbitmq.pid"),
            RABBITMQ_NODENAME=self.nodename,
            RABBITMQ_NODE_IP_ADDRESS=HOST,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS=HOST,
            ERL_EPMD_PORT=str(self.epmd_port),
            LANG=os.environ.get("LANG") or "C.UTF-8",
        )
        self.env = env
        # Our own epmd, in the foreground: the node would otherwise start a daemonized one that
        # outlives the test session.
        self.epmd_proc = self._spawn([self._epmd, "-port", str(self.epmd_port), "-address", HOST], log_name="epmd.log", env=env)
        deadline = time.monotonic() + 10
        while not _port_open(self.epmd_port):
            if self.epmd_proc.poll() is not None:
                if _PORT_TAKEN.search(_tail(d / "epmd.log")):
                    self.proc = self.epmd_proc  # _wait_ready sees it dead and retries with other ports
                    return
                raise RuntimeError(f"epmd exited with {self.epmd_proc.returncode}\n{_tail(d / 'epmd.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"epmd not listening on {self.epmd_port} after 10s\n{_tail(d / 'epmd.log')}")
            time.sleep(0.02)
        self.proc = self._spawn([self._script], env=env)

    def _probe(self) -> bool:
        """AMQP 0-9-1: the broker answers the protocol header with a Connection.Start method frame."""
        try:
            with socket.create_connection((HOST, self.port), timeout=2) as sock:
                sock.sendall(_AMQP_HEADER)
                return sock.recv(7)[:3] == b"\x01\x00\x00"  # frame type 1 (method), channel 0
        except OSError:
            return False

    def _after_stop(self) -> None:
        proc, self.epmd_proc = self.epmd_proc, None
        if proc is not None and proc is not self.proc:
            _end_group(proc, signal.SIGTERM, 5)
