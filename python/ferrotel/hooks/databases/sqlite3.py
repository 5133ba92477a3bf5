"""sqlite3 (standard library). Its classes are C types that cannot be patched, so
``sqlite3.connect`` (also as ``sqlite3.dbapi2.connect``) gives a connection of a traced subclass
of the connection factory (``sqlite3.Connection`` unless the application names its own), whose
``cursor()`` makes cursors of a traced subclass of the cursor factory. Traced: ``Cursor.execute``,
``Cursor.executemany`` and the connection's shortcuts ``Connection.execute`` and
``executemany`` (which sqlite3 runs on an internal cursor, not through ``Cursor.execute``).
``executescript`` runs several statements it does not tell apart and is not traced.

``db.namespace`` is the database argument (the file name, or ``:memory:``).
"""

from ferrotel.hooks.databases import dbapi

FACTORY_POSITION = 5  # sqlite3.connect(database, timeout, detect_types, isolation_level, check_same_thread, factory, ...)


def instrument(sqlite3):
    db_hook = dbapi.hook("sqlite3", "sqlite", query_keyword="sql")
    statements = {"execute": "execute", "executemany": "executemany"}

    def make_cursor(base):
        cls = dbapi.subclass(base, {})
        dbapi.patch(cls, db_hook, statements)
        return cls

    cursors = dbapi.TracedClasses(make_cursor)

    def make_connection(base):
        base_cursor = base.cursor

        def cursor(self, factory=None):
            if factory is None:
                return base_cursor(self, cursors(sqlite3.Cursor))
            if isinstance(factory, type) and issubclass(factory, sqlite3.Cursor):
                factory = cursors(factory)
            return base_cursor(self, factory)

        cursor.__doc__ = base_cursor.__doc__
        cursor.__wrapped__ = base_cursor
        cls = dbapi.subclass(base, {"cursor": cursor})
        dbapi.patch(cls, db_hook, statements)
        return cls

    connections = dbapi.TracedClasses(make_connection)

    def make_connect(original):
        def connect(*args, **kwargs):
            if len(args) > FACTORY_POSITION:
                factory = args[FACTORY_POSITION]
                if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
                    args = args[:FACTORY_POSITION] + (connections(factory),) + args[FACTORY_POSITION + 1 :]
            else:
                factory = kwargs.get("factory", sqlite3.Connection)
                if isinstance(factory, type) and issubclass(factory, sqlite3.Connection):
                    kwargs["factory"] = connections(factory)
            conn = original(*args, **kwargs)
            if getattr(type(conn), "_ferrotel_traced", False):
                database = args[0] if args else kwargs.get("database")
                try:
                    conn._ferrotel_db = dbapi.DbConnection(_name(database))
                except Exception:
                    pass
            return conn

        return connect

    wrapper = dbapi.wrap_function(sqlite3, "connect", make_connect)
    dbapi2 = getattr(sqlite3, "dbapi2", None)
    if dbapi2 is not None and wrapper is not None and getattr(dbapi2, "connect", None) is wrapper.__wrapped__:
        dbapi2.connect = wrapper


def _name(database):
    if isinstance(database, bytes):
        return database.decode("utf-8", "replace")
    try:
        import os

        return os.fspath(database) if not isinstance(database, str) else database
    except TypeError:
        return None
