"""SQLAlchemy (Core and ORM, 1.4 to 2.1). SQLAlchemy runs every statement through its dialect's
``do_execute``, ``do_executemany`` and ``do_execute_no_params``; over a driver ferrotel hooks
(sqlite3, psycopg, psycopg2, PyMySQL, mysqlclient, asyncpg) those pass straight through and the
driver's hook makes the one span of the statement. Over any other driver (pg8000, oracledb,
pyodbc...) the span is made here, with ``db.system.name`` from the dialect.
"""

from ferrotel.hooks.databases import dbapi

SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mariadb", "sqlite": "sqlite", "mssql": "microsoft.sql_server", "oracle": "oracle.db"}


def _describe(dialect, context):
    url = None
    try:
        url = context.root_connection.engine.url
    except AttributeError:
        pass
    system = SYSTEMS.get(getattr(dialect, "name", ""), "other_sql")
    if url is None:
        return dbapi.DbConnection(None, None, None, system)
    return dbapi.DbConnection(url.database, url.host, url.port, system)


def _driver_traced(cursor):
    return dbapi.hooked(getattr(type(cursor), "execute", None))


def instrument(default):
    cls = default.DefaultDialect
    if getattr(cls.do_execute, "_ferrotel", False):
        return
    db_hook = dbapi.hook("sqlalchemy", "other_sql", connection_attr=None, cache_on_connection=False, cache_on_object=False)
    start, _, end, fail = db_hook.functions()

    def begin(batch):
        def begin(self, cursor, statement, *args, **kwargs):
            if _driver_traced(cursor):
                return None
            context = kwargs.get("context", args[-1] if args else None)
            size = len(args[0]) if batch and args and isinstance(args[0], (list, tuple)) else -1
            return start(_describe(self, context), statement, size)

        return begin

    def traced(original, batch):
        return dbapi.traced(original, begin(batch), end, fail)

    cls.do_execute = traced(cls.do_execute, False)
    cls.do_executemany = traced(cls.do_executemany, True)
    cls.do_execute_no_params = traced(cls.do_execute_no_params, False)
