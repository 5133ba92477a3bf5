"""The database test app (FastAPI) for the async drivers: asyncpg, psycopg's async connection
and redis' asyncio client. Each request carries a marker `n` that goes into its statement as a
parameter, so the test can tell which query belongs to which request."""

import os

from fastapi import FastAPI

app = FastAPI()
_pool = None


async def pool():
    global _pool
    import asyncpg

    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["FERROTEL_TEST_PG_DSN"], min_size=1, max_size=8)
    return _pool


@app.get("/asyncpg/{n}")
async def asyncpg_route(n: int):
    import asyncio

    p = await pool()
    async with p.acquire() as conn:
        await conn.fetchval("SELECT $1::int + 0", n)
        await asyncio.sleep(0.02)  # the other requests' queries run meanwhile
        await conn.fetch("SELECT pg_sleep(0.01), $1::int", n)
    return {"n": n}


@app.get("/task/{n}")
async def task(n: int):
    """Statements in tasks the request creates: each task copies the request's context."""
    import asyncio

    p = await pool()
    results = await asyncio.gather(*(asyncio.create_task(p.fetchval("SELECT $1::int * 2", n + i)) for i in range(2)))
    return {"results": results}


@app.get("/asyncpg-warmup")
async def asyncpg_warmup():
    await pool()
    return {}


@app.get("/asyncpg-error")
async def asyncpg_error():
    import asyncpg

    p = await pool()
    try:
        await p.fetch("SELECT * FROM ferrotel_no_such_table")
    except asyncpg.UndefinedTableError:
        return {"error": True}
    return {"error": False}


@app.get("/psycopg-async/{n}")
async def psycopg_async(n: int):
    import psycopg

    async with await psycopg.AsyncConnection.connect(os.environ["FERROTEL_TEST_PG_DSN"]) as conn:
        async with conn.cursor() as cur:
            await cur.execute("SELECT %s::int", (n,))
            await cur.fetchall()
        await conn.execute("SELECT 1")
    return {"n": n}


@app.get("/sync-drivers")
def sync_drivers():
    """A plain `def` route: FastAPI runs it in anyio's thread pool (with a copy of the request's
    context), so its statements are children of the request's span too. One statement each."""
    import sqlite3

    import psycopg
    import psycopg2
    import pymysql
    import redis
    from sqlalchemy import create_engine, text

    ran = []
    conn = sqlite3.connect(":memory:")
    conn.execute("SELECT 1").fetchall()
    ran.append("ferrotel.sqlite3")
    with psycopg.connect(os.environ["FERROTEL_TEST_PG_DSN"]) as pg3:
        pg3.execute("SELECT 1").fetchall()
    ran.append("ferrotel.psycopg")
    pg2 = psycopg2.connect(os.environ["FERROTEL_TEST_PG_DSN"])
    cur = pg2.cursor()
    cur.execute("SELECT 1")
    pg2.close()
    ran.append("ferrotel.psycopg2")
    my = pymysql.connect(
        host="127.0.0.1",
        port=int(os.environ["FERROTEL_TEST_MYSQL_PORT"]),
        user=os.environ["FERROTEL_TEST_MYSQL_USER"],
        password=os.environ["FERROTEL_TEST_MYSQL_PASSWORD"],
        database=os.environ["FERROTEL_TEST_MYSQL_DATABASE"],
    )
    my.cursor().execute("SELECT 1")
    my.close()
    ran.append("ferrotel.pymysql")
    try:
        import MySQLdb

        mc = MySQLdb.connect(
            host="127.0.0.1",
            port=int(os.environ["FERROTEL_TEST_MYSQL_PORT"]),
            user=os.environ["FERROTEL_TEST_MYSQL_USER"],
            password=os.environ["FERROTEL_TEST_MYSQL_PASSWORD"],
            database=os.environ["FERROTEL_TEST_MYSQL_DATABASE"],
        )
        mc.cursor().execute("SELECT 1")
        mc.close()
        ran.append("ferrotel.mysqlclient")
    except ImportError:
        pass
    with create_engine("sqlite://").connect() as sa:
        sa.execute(text("SELECT 2")).all()
    redis.Redis.from_url(os.environ["FERROTEL_TEST_REDIS_URL"]).ping()
    ran.append("ferrotel.redis")
    return {"ran": ran}


@app.get("/redis-async/{n}")
async def redis_async(n: int):
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(os.environ["FERROTEL_TEST_REDIS_URL"])
    await client.set(f"ferrotel:async:{n}", n)
    async with client.pipeline(transaction=True) as pipe:
        await pipe.get(f"ferrotel:async:{n}").incr("ferrotel:async:count").execute()
    await client.aclose()
    return {"n": n}
