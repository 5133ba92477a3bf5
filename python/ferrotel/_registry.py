"""Every instrumentation ferrotel has, in one list: the README's table of supported libraries is
made from it (``python3 python/ferrotel/_registry.py``; a test checks the README), and the import hook
installs from it.

An entry names the instrumentation as the pure-Python agent does (the names
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` takes), its family, the library and the versions it is
tested with, and its triggers: when the application imports a trigger module, the hook function
named beside it (``"<module under ferrotel.hooks>:<function>"``, a string, so nothing is imported
before the application imports the library) is called with the freshly imported module.

The enable gate is the import hook's (``_importhook._run``): a disabled instrumentation's hooks are
never called. ``gate=False`` marks hooks that read several names themselves (urllib3 traces
requests too).
"""

SERVERS = "HTTP servers"
HTTP_CLIENTS = "HTTP clients"
DATABASES = "Databases and caches"
RPC = "RPC"
MESSAGING = "Messaging"
CONCURRENCY = "Context propagation"
TELEMETRY = "Application telemetry"

FAMILIES = (SERVERS, HTTP_CLIENTS, DATABASES, RPC, MESSAGING, CONCURRENCY, TELEMETRY)


class Instrumentation:
    __slots__ = ("name", "family", "library", "tested", "triggers", "min_version", "gate", "spans")

    def __init__(self, name, family, library, tested, triggers, spans, min_version=None, gate=True):
        self.name = name
        self.family = family
        self.library = library
        self.tested = tested
        self.triggers = triggers
        self.spans = spans
        self.min_version = min_version
        self.gate = gate


INSTRUMENTATIONS = (
    # HTTP servers (SERVER spans; ferrotel.wsgi.Middleware and ferrotel.asgi for anything else).
    Instrumentation(
        "flask", SERVERS, "Flask", "3.0, 3.1", {"flask": "servers.flask:instrument"}, "SERVER, route templates"
    ),
    Instrumentation(
        "django",
        SERVERS,
        "Django (WSGI and ASGI)",
        "4.2, 5.x",
        {
            "django.core.handlers.wsgi": "servers.django:instrument_wsgi",
            "django.core.handlers.base": "servers.django:instrument_base",
            "django.core.handlers.exception": "servers.django:instrument_exception",
        },
        "SERVER, route templates",
    ),
    Instrumentation(
        "starlette",
        SERVERS,
        "Starlette",
        "0.37+",
        {"starlette.applications": "servers.starlette:instrument"},
        "SERVER, route templates",
    ),
    Instrumentation(
        "fastapi",
        SERVERS,
        "FastAPI",
        "0.110+",
        {"fastapi.applications": "servers.fastapi:instrument"},
        "SERVER, route templates",
    ),
    Instrumentation(
        "asgi",
        SERVERS,
        "uvicorn, hypercorn (any ASGI app)",
        "uvicorn 0.29+, hypercorn 0.16+",
        {"uvicorn.config": "servers.asgi:instrument_uvicorn", "hypercorn.app_wrappers": "servers.asgi:instrument_hypercorn"},
        "SERVER",
    ),
    # Outgoing HTTP calls (CLIENT spans, context injected).
    Instrumentation(
        "urllib",
        HTTP_CLIENTS,
        "http.client, urllib.request (standard library)",
        "3.9-3.15",
        {"http.client": "http_clients.http_client:instrument"},
        "CLIENT, propagation",
        gate=False,
    ),
    Instrumentation(
        "urllib3", HTTP_CLIENTS, "urllib3", "1.26, 2.x", {"urllib3": "http_clients.urllib3:instrument"}, "CLIENT, propagation", gate=False
    ),
    Instrumentation(
        "requests",
        HTTP_CLIENTS,
        "requests",
        "2.28+",
        {"requests": "http_clients.urllib3:instrument_requests"},
        "CLIENT, propagation (through urllib3)",
        gate=False,
    ),
    Instrumentation(
        "httpx",
        HTTP_CLIENTS,
        "httpx (sync and async)",
        "0.27+",
        {"httpx": "http_clients.httpx:instrument", "httpcore": "http_clients.httpx:instrument_httpcore"},
        "CLIENT, propagation",
        gate=False,
    ),
    # Databases and caches (CLIENT spans, db.client.operation.duration).
    Instrumentation(
        "sqlite3",
        DATABASES,
        "sqlite3 (standard library)",
        "3.9-3.15",
        {"sqlite3": "databases.sqlite3:instrument"},
        "CLIENT per statement",
    ),
    Instrumentation(
        "psycopg",
        DATABASES,
        "psycopg 3 (sync and async)",
        "3.3",
        {"psycopg": "databases.psycopg:instrument"},
        "CLIENT per statement",
        min_version="3.1",
    ),
    Instrumentation(
        "psycopg2", DATABASES, "psycopg2", "2.9", {"psycopg2": "databases.psycopg2:instrument"}, "CLIENT per statement", min_version="2.8"
    ),
    Instrumentation(
        "pymysql", DATABASES, "PyMySQL", "1.2", {"pymysql": "databases.pymysql:instrument"}, "CLIENT per statement", min_version="1.0"
    ),
    Instrumentation(
        "mysqlclient",
        DATABASES,
        "mysqlclient (MySQLdb)",
        "2.3",
        {"MySQLdb.connections": "databases.mysqlclient:instrument_connections", "MySQLdb.cursors": "databases.mysqlclient:instrument_cursors"},
        "CLIENT per statement",
    ),
    Instrumentation(
        "asyncpg", DATABASES, "asyncpg", "0.32", {"asyncpg": "databases.asyncpg:instrument"}, "CLIENT per statement", min_version="0.27"
    ),
    Instrumentation(
        "sqlalchemy",
        DATABASES,
        "SQLAlchemy 1.4+ (Core and ORM)",
        "2.1",
        {"sqlalchemy.engine.default": "databases.sqlalchemy:instrument"},
        "CLIENT per statement, only over drivers not hooked above",
        min_version="1.4",
    ),
    Instrumentation(
        "redis",
        DATABASES,
        "redis-py 4+ (sync and asyncio)",
        "8.1",
        {"redis.client": "databases.redis:instrument", "redis.asyncio.client": "databases.redis:instrument_asyncio"},
        "CLIENT per command; a pipeline is one span",
        min_version="4.0",
    ),
    # The active span follows work handed to other threads.
    Instrumentation(
        "threading",
        CONCURRENCY,
        "threading, concurrent.futures (standard library)",
        "3.9-3.15",
        {"threading": "concurrency.threading:instrument_threading", "concurrent.futures.thread": "concurrency.threading:instrument_executor"},
        "none: parents spans made in threads and executors",
    ),
    Instrumentation(
        "gevent",
        CONCURRENCY,
        "gevent (gunicorn -k gevent, monkey.patch_all, gevent.pywsgi)",
        "26.9 (greenlet 3.5)",
        {"gevent": "concurrency.gevent:instrument", "gevent.pool": "concurrency.gevent:instrument_pool"},
        "none: parents spans made in spawned greenlets (no upstream instrumentation of this name)",
        min_version="20.9",
    ),
    # What the application records itself.
    Instrumentation(
        "logging",
        TELEMETRY,
        "logging (standard library)",
        "3.9-3.15",
        {"logging": "otel.logging_hook:instrument", "logging.config": "otel.logging_hook:instrument_config"},
        "trace ids on records; OTLP logs (opt-in)",
    ),
    Instrumentation(
        "opentelemetry_api",
        TELEMETRY,
        "opentelemetry-api (the app's own spans)",
        "1.28, 1.45",
        {"opentelemetry.trace": "otel.otel_api:instrument"},
        "the app's spans, in the same traces",
    ),
    # Issue 16: aiohttp (client and server) and gRPC.
    Instrumentation(
        "aiohttp_server",
        SERVERS,
        "aiohttp.web (own runner, gunicorn's GunicornWebWorker)",
        "3.14",
        {"aiohttp.web_app": "servers.aiohttp:instrument"},
        "SERVER, route templates; context from request headers",
        min_version="3.9",
    ),
    Instrumentation(
        "aiohttp_client",
        HTTP_CLIENTS,
        "aiohttp client (ClientSession)",
        "3.14",
        {"aiohttp.client": "http_clients.aiohttp:instrument"},
        "CLIENT, propagation (a TraceConfig per session)",
        min_version="3.9",
    ),
    Instrumentation(
        "grpc_client",
        RPC,
        "grpcio client (sync and grpc.aio; unary and streaming)",
        "1.85",
        {"grpc._channel": "rpc.grpc:instrument_channel", "grpc.aio": "rpc.grpc:instrument_aio_client"},
        "CLIENT per call, propagation in call metadata",
        min_version="1.60",
    ),
    Instrumentation(
        "grpc_server",
        RPC,
        "grpcio server (sync and grpc.aio; unary and streaming)",
        "1.85",
        {"grpc": "rpc.grpc:instrument_server", "grpc.aio": "rpc.grpc:instrument_aio_server"},
        "SERVER per call, context from call metadata",
        min_version="1.60",
    ),
    # Issue 16: AWS SDK calls.
    Instrumentation(
        "botocore",
        RPC,
        "botocore, boto3 (every service; S3, SQS, DynamoDB attributes)",
        "1.44",
        {"botocore.client": "rpc.botocore:instrument"},
        "CLIENT per API call (Service.Operation); nothing injected, the signed request untouched",
        min_version="1.20",
    ),
    # Issue 16: Celery.
    Instrumentation(
        "celery",
        MESSAGING,
        "Celery 5.x (prefork pool, eager mode)",
        "5.7",
        {"celery.app.amqp": "messaging.celery:instrument_amqp", "celery.app.trace": "messaging.celery:instrument_worker"},
        "PRODUCER per task sent, context in the message headers; CONSUMER per task run, its child",
        min_version="5.0",
    ),
)


def triggers():
    """``{trigger module: [(instrumentation, "module:function"), ...]}``."""
    out = {}
    for inst in INSTRUMENTATIONS:
        for module, target in inst.triggers.items():
            out.setdefault(module, []).append((inst, target))
    return out


def markdown_table():
    """The README's table of supported libraries."""
    lines = [
        "| family | library | tested | instrumentation name | what it makes |",
        "|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        for inst in INSTRUMENTATIONS:
            if inst.family == family:
                lines.append("| %s | %s | %s | `%s` | %s |" % (family, inst.library, inst.tested, inst.name, inst.spans))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(markdown_table())
