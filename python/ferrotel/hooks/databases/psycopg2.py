"""psycopg2. Its connection and cursor are C types: ``psycopg2.connect`` makes connections of a
traced subclass of the connection factory, whose ``cursor()`` makes cursors of a traced subclass
of the cursor factory (``psycopg2.extensions.cursor``, ``extras.DictCursor``, the application's
own...). Traced: ``execute``, ``executemany``, ``callproc``.
"""

from ferrotel.hooks.databases import dbapi

STATEMENTS = {"execute": "execute", "executemany": "executemany", "callproc": "callproc"}


def describe(conn):
    info = conn.info
    host = info.host
    return dbapi.DbConnection(info.dbname, None if not host or host.startswith("/") else host, dbapi.port(info.port))


def instrument(psycopg2):
    extensions = psycopg2.extensions
    db_hook = dbapi.hook("psycopg2", "postgresql", describe)

    def make_cursor(base):
        cls = dbapi.subclass(base, {})
        dbapi.patch(cls, db_hook, STATEMENTS)
        return cls

    cursors = dbapi.TracedClasses(make_cursor)

    def make_connection(base):
        base_cursor = base.cursor

        def cursor(self, *args, **kwargs):
            factory = kwargs.get("cursor_factory") or self.cursor_factory or extensions.cursor
            if isinstance(factory, type) and issubclass(factory, extensions.cursor):
                kwargs["cursor_factory"] = cursors(factory)
            return base_cursor(self, *args, **kwargs)

        cursor.__doc__ = base_cursor.__doc__
        cursor.__wrapped__ = base_cursor
        return dbapi.subclass(base, {"cursor": cursor})

    connections = dbapi.TracedClasses(make_connection)

    def make_connect(original):
        def connect(dsn=None, connection_factory=None, cursor_factory=None, **kwargs):
            factory = connection_factory or extensions.connection
            if isinstance(factory, type) and issubclass(factory, extensions.connection):
                factory = connections(factory)
            return original(dsn, connection_factory=factory, cursor_factory=cursor_factory, **kwargs)

        return connect

    dbapi.wrap_function(psycopg2, "connect", make_connect)
