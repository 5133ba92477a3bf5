"""pytest plugin: session-scoped real database servers (see support/databases.py).

One server of each kind per test process, started the first time a test asks for it and stopped at
the end of the session; a server that is not installed (or RabbitMQ not coming up) skips the tests
that need it, with the reason. Under pytest-xdist every worker is its own process and starts its
own servers (their own ports and directories), so nothing is shared between workers.

Enabled from the root conftest: ``pytest_plugins = ["support.db_fixtures"]``.
"""

from __future__ import annotations

import pytest

from support.databases import MariaDB, Postgres, RabbitMQ, Redis, Unavailable

_started: list = []  # servers this process started, for the terminal summary


def _serve(cls):
    server = cls()
    try:
        server.start()
    except Unavailable as exc:
        pytest.skip(str(exc))
    _started.append(server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A running PostgreSQL: ``.dsn`` (postgresql://ferrotel:...@127.0.0.1:<port>/ferrotel)."""
    yield from _serve(Postgres)


@pytest.fixture(scope="session")
def mariadb_server():
    """A running MariaDB: ``.host``, ``.port``, ``.user``, ``.password``, ``.database``, ``.url``."""
    yield from _serve(MariaDB)


@pytest.fixture(scope="session")
def redis_server():
    """A running Redis: ``.url`` (redis://127.0.0.1:<port>/0)."""
    yield from _serve(Redis)


@pytest.fixture(scope="session")
def rabbitmq_server():
    """A running RabbitMQ node: ``.url`` (amqp://ferrotel:...@127.0.0.1:<port>/%2F); skips when absent."""
    yield from _serve(RabbitMQ)


def pytest_terminal_summary(terminalreporter):
    """One line with each server's start-up time, to keep an eye on the suite's speed."""
    if _started:
        times = ", ".join(f"{s.kind} {s.startup_seconds:.1f}s" for s in _started if s.startup_seconds is not None)
        terminalreporter.write_line(f"database servers started in: {times}")
