"""Celery 5.x (issue 16): a PRODUCER span per task sent, a CONSUMER span per task run, one trace.

- Sending: every ``delay``, ``apply_async``, ``send_task`` and canvas primitive (chain, group,
  chord: their signatures end in ``apply_async``, the chain's next link and the chord's body are
  sent by the worker when the previous task finishes) goes through the ``send_task_message``
  function a Celery app's ``AMQP`` makes once (``AMQP._create_task_sender``). Its result is
  replaced by a native stand-in (``_native.MessagingHook.wrap_sender``) that makes the span
  ``send {queue}`` and puts ``traceparent``/``tracestate``/``baggage`` into the message headers.
  Not the ``before_task_publish``/``after_task_publish`` signals: two signal dispatches cost
  more than the 3 µs budget by themselves, and a publish that raises sends no
  ``after_task_publish`` (the span would never end).
- Running: Celery's public task signals, sent by the worker (every pool) and by eager
  ``apply()``: ``task_prerun`` starts the span ``process {queue}`` (parent: the context the
  message carries; see ``src/hooks/messaging``) and makes it current, so the task's own calls
  are its children; ``task_failure`` and ``task_retry`` record the exception (for a retry, the
  exception the task passed to ``retry(exc=...)``, else the ``Retry``); ``task_postrun`` (always
  sent, from a ``finally``) ends it.
- Prefork children leave through ``os._exit``, which the bootstrap already flushes at;
  ``worker_process_shutdown`` flushes too (it runs in the child just before).

Return values, exceptions and signatures are Celery's: the hooks only read what they receive.
"""

from ferrotel import _native

_SCOPE = "ferrotel.celery"
_hook = []
# task id -> [span, token]: spans between task_prerun and task_postrun (a handful at once per
# process; bounded below in case a task's postrun never comes).
_OPEN_MAX = 4096


def _the_hook():
    if not _hook:
        _hook.append(_native.MessagingHook(_SCOPE))
    return _hook[0]


def instrument_amqp(amqp_module):
    """``celery.app.amqp``: the task sender each app's ``AMQP`` makes (once per app)."""
    cls = getattr(amqp_module, "AMQP", None)
    if cls is None or cls.__dict__.get("_ferrotel_sender", False):
        return
    original = cls.__dict__.get("_create_task_sender")
    if original is None:
        return  # not the Celery this was written for: sends go untraced
    hook = _the_hook()

    def _create_task_sender(self):
        sender = original(self)
        try:
            queue = self.app.conf.task_default_queue
            return hook.wrap_sender(sender, queue if isinstance(queue, str) else None)
        except Exception:
            return sender

    _create_task_sender.__wrapped__ = original
    _create_task_sender.__name__ = original.__name__
    _create_task_sender.__qualname__ = getattr(original, "__qualname__", original.__name__)
    _create_task_sender.__doc__ = original.__doc__
    cls._create_task_sender = _create_task_sender
    cls._ferrotel_sender = True


def instrument_worker(trace_module):
    """``celery.app.trace`` (the tracer the worker and eager ``apply()`` run tasks in): connect to
    the task signals, before any tracer is built (each keeps its signals' receiver lists)."""
    if getattr(trace_module, "_ferrotel_worker", False):
        return
    from celery import signals

    start, end = _the_hook().functions()
    open_spans = {}

    def prerun(sender=None, task_id=None, task=None, **_):
        started = start(getattr(task, "name", None), getattr(task, "request", None))
        if started is not None:
            if len(open_spans) >= _OPEN_MAX:
                open_spans.clear()
            open_spans[task_id] = started

    def failure(sender=None, task_id=None, exception=None, **_):
        started = open_spans.get(task_id)
        if started is not None and exception is not None:
            started[0].record_exception(exception)

    def retry(sender=None, request=None, reason=None, **_):
        started = open_spans.get(getattr(request, "id", None))
        if started is not None:
            cause = getattr(reason, "exc", None)
            if not isinstance(cause, BaseException):
                cause = reason
            if isinstance(cause, BaseException):
                started[0].record_exception(cause)

    def postrun(sender=None, task_id=None, **_):
        started = open_spans.pop(task_id, None)
        if started is not None:
            end(started[0], started[1], None)

    def process_shutdown(**_):
        _native.flush(2000)

    # weak=False: these closures have no other reference; dispatch_uid: connected once.
    signals.task_prerun.connect(prerun, weak=False, dispatch_uid="ferrotel.celery.prerun")
    signals.task_failure.connect(failure, weak=False, dispatch_uid="ferrotel.celery.failure")
    signals.task_retry.connect(retry, weak=False, dispatch_uid="ferrotel.celery.retry")
    signals.task_postrun.connect(postrun, weak=False, dispatch_uid="ferrotel.celery.postrun")
    signals.worker_process_shutdown.connect(process_shutdown, weak=False, dispatch_uid="ferrotel.celery.shutdown")
    trace_module._ferrotel_worker = True
