"""Python ``logging``: trace correlation on every record, and (opt-in) OTLP log export.

Installed when the application (or its server) imports ``logging``:

- a native record factory (wrapping whatever factory was set) gives every ``LogRecord`` the
  upstream logging instrumentation's fields ``otelTraceID``, ``otelSpanID``, ``otelTraceSampled``
  and ``otelServiceName`` ("0"/"0"/False outside a span), so existing formats keep working;
- ``OTEL_PYTHON_LOG_CORRELATION=true``: ``logging.basicConfig`` with the upstream default format
  (or ``OTEL_PYTHON_LOG_FORMAT``) at ``OTEL_PYTHON_LOG_LEVEL`` (default INFO), as upstream does;
- ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true`` (and an ``OTEL_LOGS_EXPORTER``): a
  handler on the root logger hands each record that reaches it (the app's logger levels decide,
  as with the upstream handler) to the native pipeline as an OTLP log record. ``basicConfig``,
  ``dictConfig`` and ``fileConfig`` are wrapped, as upstream wraps them, so the handler neither
  blocks the app's own ``basicConfig`` nor is lost when the app reconfigures logging.
"""

import logging

from ferrotel import _native

DEFAULT_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
    "[trace_id=%(otelTraceID)s span_id=%(otelSpanID)s resource.service.name=%(otelServiceName)s "
    "trace_sampled=%(otelTraceSampled)s] - %(message)s"
)

_emit = _native.emit_log


class Handler(logging.Handler):
    """Exports the records that reach it as OTLP log records through ferrotel's pipeline.

    While it has no filters, ``handle`` is the native function itself (an instance attribute:
    ``logging`` calls ``hdlr.handle(record)``), so a record costs no Python frame here; adding a
    filter brings back the method below, which applies the filters first."""

    def __init__(self, level=logging.NOTSET):
        super().__init__(level)
        self.handle = _emit

    def addFilter(self, filter):
        self.__dict__.pop("handle", None)
        super().addFilter(filter)

    def handle(self, record):
        # Handler.handle without the lock: the native emit is thread-safe and never blocks.
        if self.filters:
            rv = self.filter(record)
            if not rv:
                return rv
            if isinstance(rv, logging.LogRecord):  # 3.12+: a filter may return a replacement
                record = rv
        _emit(record)
        return True

    def emit(self, record):
        _emit(record)  # native: never raises, never blocks


handler = None  # the installed Handler, if log export is on


def instrument(logging_module):
    global handler
    settings = _native.logging_settings()
    if settings is None or getattr(logging_module, "_ferrotel_instrumented", False):
        return
    logging_module._ferrotel_instrumented = True
    factory = logging_module.getLogRecordFactory()
    if not isinstance(factory, _native.LogRecordFactory):
        logging_module.setLogRecordFactory(_native.LogRecordFactory(factory, settings["service_name"]))
    if settings["correlation_format"]:
        logging_module.basicConfig(format=settings["format"] or DEFAULT_FORMAT, level=settings["level"] or logging_module.INFO)
    if settings["export"]:
        handler = Handler()
        logging_module.getLogger().addHandler(handler)
        logging_module.basicConfig = _keeping_handler(logging_module.basicConfig)
        import sys

        config = sys.modules.get("logging.config")
        if config is not None:
            instrument_config(config)


def instrument_config(config):
    """``logging.config`` (hooked when the app imports it): keep the handler across reconfiguration."""
    if handler is None or getattr(config, "_ferrotel_instrumented", False):
        return
    config._ferrotel_instrumented = True
    config.dictConfig = _keeping_handler(config.dictConfig)
    config.fileConfig = _keeping_handler(config.fileConfig)


def _keeping_handler(configure):
    """Run a logging configuration function without our handler on the root logger, then put it
    back: ``basicConfig`` does nothing when the root logger has a handler, and ``dictConfig`` /
    ``fileConfig`` remove the root logger's handlers."""

    def wrapper(*args, **kwargs):
        root = logging.getLogger()
        removed = handler in root.handlers
        if removed:
            root.removeHandler(handler)
        try:
            return configure(*args, **kwargs)
        finally:
            if removed and handler not in root.handlers:
                root.addHandler(handler)

    wrapper.__wrapped__ = configure
    wrapper.__name__ = getattr(configure, "__name__", "wrapper")
    wrapper.__doc__ = getattr(configure, "__doc__", None)
    return wrapper
