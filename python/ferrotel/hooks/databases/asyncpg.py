"""asyncpg. ``Connection.execute``, ``executemany``, ``fetch``, ``fetchval``, ``fetchrow`` (and
``fetchmany`` where it exists) get coroutine wrappers; none of them calls another, so each call is
one span. Pools hand out proxies to these connections, so pool methods are traced the same way.
Prepared statements and cursors are not traced.
"""

from ferrotel.hooks.databases import dbapi

STATEMENTS = {"execute": "execute", "executemany": "executemany", "fetch": "execute", "fetchval": "execute", "fetchrow": "execute", "fetchmany": "executemany"}


def describe(conn):
    addr = getattr(conn, "_addr", None)
    host = port = None
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
    params = getattr(conn, "_params", None)
    return dbapi.DbConnection(getattr(params, "database", None), dbapi.text(host), dbapi.port(port))


def instrument(asyncpg):
    # Connection has __slots__: described on each call (a few attribute reads).
    db_hook = dbapi.hook("asyncpg", "postgresql", describe, connection_attr=None, cache_on_connection=False, cache_on_object=False)
    dbapi.patch_async(asyncpg.connection.Connection, db_hook, STATEMENTS)
