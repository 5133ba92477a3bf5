"""mysqlclient (``MySQLdb``). Cursors are Python classes: ``BaseCursor.execute``,
``executemany`` and ``callproc`` are replaced by native hooks (``executemany``'s inner
``execute`` calls make no spans of their own). The connection's facts come from its arguments,
kept when it is made (``Connection.__init__``): libmysqlclient does not give them back.
"""

from ferrotel.hooks.databases import dbapi

STATEMENTS = {"execute": "execute", "executemany": "executemany", "callproc": "callproc"}
POSITIONAL = ("host", "user", "passwd", "db", "port")


def describe(conn):
    info = getattr(conn, "get_server_info", None)
    system = "mysql"
    try:
        if info is not None and "mariadb" in str(info()).lower():
            system = "mariadb"
    except Exception:
        pass
    args = getattr(conn, "_ferrotel_args", None) or {}
    host = args.get("host")
    socket = args.get("unix_socket")
    port = None if socket else dbapi.port(args.get("port", 3306))
    return dbapi.DbConnection(dbapi.text(args.get("database", args.get("db"))), dbapi.text(host) or "localhost", port, system)


def instrument_cursors(cursors):
    """Called with ``MySQLdb.cursors`` (MySQLdb imports it, and its connections module, lazily)."""
    dbapi.patch(cursors.BaseCursor, _hook(), STATEMENTS)


_hooks = []


def _hook():
    if not _hooks:
        _hooks.append(dbapi.hook("mysqlclient", "mysql", describe, nested_executemany=True))
    return _hooks[0]


def instrument_connections(connections):
    """Called with ``MySQLdb.connections``: keep each connection's arguments (not its credentials)."""
    connection = connections.Connection
    dbapi.mark(connection)
    original_init = connection.__init__
    if not getattr(original_init, "_ferrotel", False):

        def __init__(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            try:
                kept = dict(zip(POSITIONAL, args))
                kept.update((k, v) for k, v in kwargs.items() if k in ("host", "port", "db", "database", "unix_socket"))
                kept.pop("passwd", None)
                kept.pop("user", None)
                self._ferrotel_args = kept
            except Exception:
                pass

        __init__.__doc__ = original_init.__doc__
        __init__.__wrapped__ = original_init
        __init__._ferrotel = True
        connection.__init__ = __init__
