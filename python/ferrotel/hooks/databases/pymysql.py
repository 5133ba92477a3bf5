"""PyMySQL. ``Cursor.execute``, ``executemany`` and ``callproc`` (inherited by every cursor
class) are replaced by native hooks. PyMySQL's ``executemany`` runs its statements through
``execute``: those inner calls make no spans (one span per batch).

``db.system.name`` is ``mariadb`` when the server says it is MariaDB, else ``mysql``.
"""

from ferrotel.hooks.databases import dbapi

STATEMENTS = {"execute": "execute", "executemany": "executemany", "callproc": "callproc"}


def describe(conn):
    version = dbapi.text(getattr(conn, "server_version", None)) or ""
    system = "mariadb" if "mariadb" in version.lower() else "mysql"
    host = dbapi.text(getattr(conn, "host", None))
    port = None if getattr(conn, "unix_socket", None) else dbapi.port(getattr(conn, "port", None))
    return dbapi.DbConnection(dbapi.text(getattr(conn, "db", None)), host, port, system)


def instrument(pymysql):
    db_hook = dbapi.hook("pymysql", "mysql", describe, nested_executemany=True)
    dbapi.mark(pymysql.connections.Connection)
    dbapi.patch(pymysql.cursors.Cursor, db_hook, STATEMENTS)
