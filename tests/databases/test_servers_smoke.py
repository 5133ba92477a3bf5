"""The real database servers of support/databases.py answer real client libraries, on 127.0.0.1 only."""

from __future__ import annotations

import uuid

import pytest


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port` (Linux /proc/net/tcp{,6})."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                if width == 8:
                    found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
                else:
                    found.add("ipv6:" + addr)
    return found


def _assert_loopback_only(*ports: int) -> None:
    for port in ports:
        assert _listening_addresses(port) == {"127.0.0.1"}, f"port {port}"


def test_postgres(postgres_server):
    import psycopg

    table = f"smoke_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.dsn, connect_timeout=10) as conn:
        user, db, two = conn.execute("SELECT current_user, current_database(), 1 + 1").fetchone()
        conn.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, name text)")
        conn.execute(f"INSERT INTO {table} (name) VALUES (%s), (%s)", ("a", "b"))
        names = [r[0] for r in conn.execute(f"SELECT name FROM {table} ORDER BY id")]
        conn.execute(f"DROP TABLE {table}")
    assert (user, db, two) == (postgres_server.user, postgres_server.database, 2)
    assert names == ["a", "b"]
    _assert_loopback_only(postgres_server.port)


def test_postgres_rejects_a_wrong_password(postgres_server):
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=postgres_server.host, port=postgres_server.port, user=postgres_server.user,
            password="wrong", dbname=postgres_server.database, connect_timeout=10,
        )


def test_mariadb(mariadb_server):
    import pymysql

    table = f"smoke_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(
        host=mariadb_server.host, port=mariadb_server.port, user=mariadb_server.user,
        password=mariadb_server.password, database=mariadb_server.database, connect_timeout=10,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), DATABASE(), 1 + 1")
            user, db, two = cur.fetchone()
            cur.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB")
            cur.executemany(f"INSERT INTO {table} (name) VALUES (%s)", [("a",), ("b",)])
            conn.commit()
            cur.execute(f"SELECT name FROM {table} ORDER BY id")
            names = [r[0] for r in cur.fetchall()]
            cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()
    assert (user, db, two) == (f"{mariadb_server.user}@%", mariadb_server.database, 2)
    assert names == ["a", "b"]
    assert mariadb_server.url == (
        f"mysql://{mariadb_server.user}:{mariadb_server.password}@127.0.0.1:{mariadb_server.port}/{mariadb_server.database}"
    )
    _assert_loopback_only(mariadb_server.port)


def test_redis(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url, socket_timeout=10)
    try:
        assert client.ping() is True
        key = f"smoke:{uuid.uuid4().hex}"
        client.set(key, "value", ex=60)
        assert client.get(key) == b"value"
        assert client.incr(key + ":n") == 1
        client.delete(key, key + ":n")
    finally:
        client.close()
    _assert_loopback_only(redis_server.port)


def test_rabbitmq(rabbitmq_server):
    kombu = pytest.importorskip("kombu", reason="kombu (the Celery transport) is not installed in the test venv")

    body = {"id": uuid.uuid4().hex}
    with kombu.Connection(rabbitmq_server.url, connect_timeout=10) as conn:
        name = f"smoke-{uuid.uuid4().hex[:8]}"
        queue = conn.SimpleQueue(name)
        try:
            queue.put(body)
            message = queue.get(block=True, timeout=10)
            message.ack()
        finally:
            queue.close()  # cancels the consumer
            conn.default_channel.queue_delete(name)
    assert message.payload == body
    # AMQP, the Erlang distribution and the node's own epmd: all on loopback.
    _assert_loopback_only(rabbitmq_server.port, rabbitmq_server.dist_port)
    assert _listening_addresses(rabbitmq_server.epmd_port) <= {"127.0.0.1", "ipv6:" + "0" * 24 + "01000000"}


def test_one_server_of_each_kind_per_session(postgres_server, mariadb_server, redis_server, request):
    """Asking again gives the same, still running, servers."""
    assert request.getfixturevalue("postgres_server") is postgres_server
    for server in (postgres_server, mariadb_server, redis_server):
        assert server.running
        assert server.host == "127.0.0.1"
        assert server.startup_seconds is not None
