"""The database test app (Flask): one route per driver, each running the statements the suite
asserts on. Connection settings come from the environment the test sets (FERROTEL_TEST_*); a
route whose driver is not installed answers 501.

Every route runs, in order: a plain query with a secret *literal* in its text, a parameterised
query with a secret *parameter*, an executemany of 3 rows, a connection-level shortcut where
the driver has one, and a failing statement (caught). It answers with what it ran, so the test
knows how many statements to expect.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, jsonify

app = Flask(__name__)

SECRET_LITERAL = "s3cr3t-literal-7781"
SECRET_PARAM = "s3cr3t-param-9932"
ROWS = [(1, "a"), (2, "b"), (3, "c")]


def pg_dsn():
    return os.environ["FERROTEL_TEST_PG_DSN"]


def mysql_args():
    return dict(
        host="127.0.0.1",
        port=int(os.environ["FERROTEL_TEST_MYSQL_PORT"]),
        user=os.environ["FERROTEL_TEST_MYSQL_USER"],
        password=os.environ["FERROTEL_TEST_MYSQL_PASSWORD"],
        database=os.environ["FERROTEL_TEST_MYSQL_DATABASE"],
    )


def dbapi_scenario(conn, table, placeholder, failing_error, shortcut=None):
    """The standard statements on a DB-API connection; returns the names of what ran."""
    ran = []
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id INTEGER, name VARCHAR(40))")
    ran += ["drop", "create"]
    cur.executemany(f"INSERT INTO {table} (id, name) VALUES ({placeholder}, {placeholder})", ROWS)
    ran.append("executemany")
    cur.execute(f"SELECT id, name FROM {table} WHERE name = '{SECRET_LITERAL}' OR id = 12345678")
    cur.fetchall()
    ran.append("literal")
    cur.execute(f"SELECT id FROM {table} WHERE name = {placeholder}", (SECRET_PARAM,))
    cur.fetchall()
    ran.append("param")
    if shortcut is not None:
        shortcut(f"SELECT count(*) FROM {table}")
        ran.append("shortcut")
    try:
        cur.execute("SELECT * FROM ferrotel_no_such_table")
    except failing_error:
        ran.append("error")
    try:
        conn.rollback()
    except Exception:
        pass
    cur.close()
    return ran


@app.route("/sqlite")
def sqlite_route():
    import sqlite3

    conn = sqlite3.connect(":memory:")
    ran = dbapi_scenario(conn, "items", "?", sqlite3.OperationalError, shortcut=lambda q: conn.execute(q).fetchall())
    conn.close()
    return jsonify(ran=ran)


@app.route("/psycopg")
def psycopg_route():
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        ran = dbapi_scenario(conn, "items_pg3", "%s", psycopg.errors.UndefinedTable, shortcut=lambda q: conn.execute(q).fetchall())
    return jsonify(ran=ran)


@app.route("/psycopg2")
def psycopg2_route():
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(pg_dsn())
    conn.autocommit = True
    ran = dbapi_scenario(conn, "items_pg2", "%s", psycopg2.errors.UndefinedTable)
    cur = conn.cursor(cursor_factory=psycopg2.extras.DictCursor)
    cur.execute("SELECT 1 AS one")
    cur.fetchall()
    ran.append("dictcursor")
    conn.close()
    return jsonify(ran=ran)


@app.route("/pymysql")
def pymysql_route():
    import pymysql

    conn = pymysql.connect(**mysql_args(), autocommit=True)
    ran = dbapi_scenario(conn, "items_pymysql", "%s", pymysql.err.ProgrammingError)
    conn.close()
    return jsonify(ran=ran)


@app.route("/mysqlclient")
def mysqlclient_route():
    try:
        import MySQLdb
    except ImportError as exc:
        return jsonify(ran=[], why=f"mysqlclient (built by `make db-servers` against libmariadb, best effort): {exc}"), 501
    args = mysql_args()
    conn = MySQLdb.connect(host=args["host"], port=args["port"], user=args["user"], password=args["password"], database=args["database"], autocommit=True)
    ran = dbapi_scenario(conn, "items_mysqlclient", "%s", MySQLdb.ProgrammingError)
    conn.close()
    return jsonify(ran=ran)


_engines = {}


def engine(url):
    from sqlalchemy import create_engine

    if url not in _engines:
        _engines[url] = create_engine(url)
    return _engines[url]


@app.route("/sqlalchemy/<kind>")
def sqlalchemy_route(kind):
    from sqlalchemy import Column, Integer, String, select, text
    from sqlalchemy.orm import Session, declarative_base

    url = {"sqlite": "sqlite://", "psycopg": pg_dsn().replace("postgresql://", "postgresql+psycopg://", 1)}[kind]
    eng = engine(url)
    Base = declarative_base()

    class Item(Base):
        __tablename__ = "sa_items"
        id = Column(Integer, primary_key=True)
        name = Column(String(40))

    ran = []
    with eng.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS sa_items"))
        conn.execute(text("CREATE TABLE sa_items (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
        conn.execute(text("INSERT INTO sa_items (id, name) VALUES (:id, :name)"), {"id": 1, "name": SECRET_PARAM})
    ran += ["drop", "create", "insert"]
    with Session(eng) as session:
        session.execute(select(Item).where(Item.name == SECRET_PARAM)).all()
    ran.append("orm_select")
    return jsonify(ran=ran)


@app.route("/redis")
def redis_route():
    import redis

    client = redis.Redis.from_url(os.environ["FERROTEL_TEST_REDIS_URL"])
    client.set("ferrotel:key", SECRET_PARAM)
    client.get("ferrotel:key")
    pipe = client.pipeline()
    pipe.set("ferrotel:a", SECRET_PARAM).incr("ferrotel:n").get("ferrotel:a")
    pipe.execute()
    try:
        client.incr("ferrotel:key")  # WRONGTYPE? no: "value is not an integer" (ERR)
    except redis.ResponseError:
        pass
    return jsonify(ran=["set", "get", "pipeline", "error"])


@app.route("/threads")
def threads_route():
    import sqlite3

    def query(tag):
        conn = sqlite3.connect(":memory:")
        conn.execute(f"SELECT '{tag}'").fetchall()
        conn.close()

    t = threading.Thread(target=query, args=("thread",))
    t.start()
    t.join()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(query, "executor").result()
        list(pool.map(query, ["map"]))
    return jsonify(ran=["thread", "executor", "map"])


@app.route("/pid")
def pid():
    return jsonify(pid=os.getpid())
