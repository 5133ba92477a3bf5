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


def instrument(client):
    db_hook = _hook()
    dbapi.mark(client.Redis)
    dbapi.patch(client.Redis, db_hook, {"execute_command": "command"})
    _, start_command, end, fail = db_hook.functions()
    pipeline = client.Pipeline
    original = pipeline.execute
    if getattr(original, "_ferrotel", False):
        return

    def execute(self, *args, **kwargs):
        stack = self.command_stack
        span = start_command(self, "MULTI" if getattr(self, "transaction", False) else "PIPELINE", _pipeline_text(stack), len(stack)) if stack else None
        if span is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            fail(span, exc)
            raise
        end(span)
        return result

    _keep(execute, original)
    pipeline.execute = execute


def instrument_asyncio(client):
    db_hook = _hook()
    dbapi.mark(client.Redis)
    _, start_command, end, fail = db_hook.functions()
    redis_cls, pipeline = client.Redis, client.Pipeline
    command = redis_cls.execute_command
    if getattr(command, "_ferrotel", False):
        return

    async def execute_command(self, *args, **options):
        span = start_command(self, _command(args), " ".join([_command(args)] + ["?"] * (len(args) - 1)), -1)
        if span is None:
            return await command(self, *args, **options)
        try:
            result = await command(self, *args, **options)
        except BaseException as exc:
            fail(span, exc)
            raise
        end(span)
        return result

    original = pipeline.execute

    async def execute(self, *args, **kwargs):
        stack = self.command_stack
        span = start_command(self, "MULTI" if getattr(self, "is_transaction", False) else "PIPELINE", _pipeline_text(stack), len(stack)) if stack else None
        if span is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            fail(span, exc)
            raise
        end(span)
        return result

    _keep(execute_command, command)
    _keep(execute, original)
    redis_cls.execute_command = execute_command
    pipeline.execute = execute


def _keep(wrapper, original):
    wrapper.__doc__ = original.__doc__
    wrapper.__wrapped__ = original
    wrapper.__name__ = original.__name__
    wrapper.__qualname__ = original.__qualname__
    wrapper._ferrotel = True
