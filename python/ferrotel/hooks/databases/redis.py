"""redis-py, sync and asyncio. A command is one span (``Redis.execute_command``: a native hook
for the sync client, a coroutine wrapper for the asyncio one); a pipeline or transaction is one
span when it is executed (``Pipeline.execute``), whatever the number of commands in it.

Only command names are recorded: ``db.query.text`` is the command with every argument withheld
(``SET ? ?``), and a pipeline's is its commands' on separate lines. Keys and values never leave
the process. ``db.namespace`` is the database index.
"""

from ferrotel.hooks.databases import dbapi


def describe(client):
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    path = kwargs.get("path")
    host = None if path else kwargs.get("host", "localhost")
    port = None if path else dbapi.port(kwargs.get("port", 6379))
    return dbapi.DbConnection(str(kwargs.get("db", 0)), dbapi.text(host), port)


def _command(args):
    name = args[0] if args else "?"
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return str(name).upper()


def _pipeline_text(stack):
    lines = []
    for entry in stack[:64]:
        args = getattr(entry, "args", None)
        if args is None:
            args = entry[0] if isinstance(entry, tuple) and entry else ()
        lines.append(" ".join([_command(args)] + ["?"] * (len(args) - 1)))
    return "\n".join(lines)


def _hook():
    return dbapi.hook("redis", "redis", describe, connection_attr=None)


def _pipeline_begin(start_command, transaction_attr):
    def begin(self, *args, **kwargs):
        stack = self.command_stack
        if not stack:
            return None
        return start_command(self, "MULTI" if getattr(self, transaction_attr, False) else "PIPELINE", _pipeline_text(stack), len(stack))

    return begin


def instrument(client):
    db_hook = _hook()
    dbapi.mark(client.Redis)
    dbapi.patch(client.Redis, db_hook, {"execute_command": "command"})
    _, start_command, end, fail = db_hook.functions()
    pipeline = client.Pipeline
    if not getattr(pipeline.execute, "_ferrotel", False):
        pipeline.execute = dbapi.traced(pipeline.execute, _pipeline_begin(start_command, "transaction"), end, fail)


def instrument_asyncio(client):
    db_hook = _hook()
    dbapi.mark(client.Redis)
    _, start_command, end, fail = db_hook.functions()
    redis_cls, pipeline = client.Redis, client.Pipeline
    if getattr(redis_cls.execute_command, "_ferrotel", False):
        return

    def begin(self, *args, **options):
        name = _command(args)
        return start_command(self, name, " ".join([name] + ["?"] * (len(args) - 1)), -1)

    redis_cls.execute_command = dbapi.traced_async(redis_cls.execute_command, begin, end, fail)
    pipeline.execute = dbapi.traced_async(pipeline.execute, _pipeline_begin(start_command, "is_transaction"), end, fail)
