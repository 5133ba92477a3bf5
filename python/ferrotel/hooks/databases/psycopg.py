"""psycopg 3, sync and async. Its classes are Python classes: ``Cursor.execute`` and
``executemany`` (inherited by ``ClientCursor``, ``RawCursor``, ``ServerCursor``...) are replaced
by native hooks, ``AsyncCursor``'s (and ``AsyncServerCursor``'s) by coroutine wrappers.
``Connection.execute`` runs through a cursor's ``execute``, so it is traced there (one span).
Statements given as ``psycopg.sql`` objects get a span without ``db.query.text``.
"""

from ferrotel.hooks.databases import dbapi

STATEMENTS = {"execute": "execute", "executemany": "executemany"}


def describe(conn):
    info = conn.info
    host = info.host
    return dbapi.DbConnection(info.dbname, None if host.startswith("/") else host, dbapi.port(info.port))


def instrument(psycopg):
    # Cursors have __slots__ (the description stays on the connection); `_conn` is the
    # connection, a plain attribute where the public `connection` is a property.
    db_hook = dbapi.hook("psycopg", "postgresql", describe, connection_attr="_conn", cache_on_object=False)
    dbapi.mark(psycopg.Connection, psycopg.AsyncConnection)
    for name in ("Cursor", "ServerCursor"):
        cls = getattr(psycopg, name, None)
        if cls is not None:
            dbapi.patch(cls, db_hook, STATEMENTS)
    functions = db_hook.functions()
    for name in ("AsyncCursor", "AsyncServerCursor"):
        cls = getattr(psycopg, name, None)
        if cls is not None:
            dbapi.patch_async(cls, db_hook, STATEMENTS, functions)
