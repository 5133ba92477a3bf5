"""The active span follows work handed to another thread (upstream's name: ``threading``).

A new thread starts with an empty context, so a query made in it would start a trace of its own.
Two places hand work over, and each carries the span that was current where the work was
submitted (only that span: the rest of the submitter's context stays where it was, as before):

- ``threading.Thread.start``: the thread's ``run`` (the class's, or a subclass's override) runs
  with that span current; ``run`` is restored when it returns.
- ``concurrent.futures.ThreadPoolExecutor.submit`` (and so ``Executor.map`` and asyncio's
  ``run_in_executor``): the submitted callable runs with it current.

asyncio tasks need nothing: each copies the context it was created in.
"""

from ferrotel import _native

_current = _native.current_span
_enter = _native.set_current
_leave = _native.reset_current


def instrument_threading(threading):
    cls = threading.Thread
    if getattr(cls.start, "_ferrotel", False):
        return
    original_start = cls.start

    def start(self):
        span = _current()
        if span is not None:
            run = self.run

            def run_with_parent():
                token = _enter(span)
                try:
                    run()
                finally:
                    _leave(token)
                    self.__dict__.pop("run", None)

            self.run = run_with_parent
        return original_start(self)

    start.__doc__ = original_start.__doc__
    start.__wrapped__ = original_start
    start._ferrotel = True
    cls.start = start


def instrument_executor(thread_module):
    cls = thread_module.ThreadPoolExecutor
    if getattr(cls.submit, "_ferrotel", False):
        return
    original_submit = cls.submit

    def submit(self, fn, /, *args, **kwargs):
        span = _current()
        if span is None:
            return original_submit(self, fn, *args, **kwargs)

        def call():
            token = _enter(span)
            try:
                return fn(*args, **kwargs)
            finally:
                _leave(token)

        return original_submit(self, call)

    submit.__doc__ = original_submit.__doc__
    submit.__wrapped__ = original_submit
    submit._ferrotel = True
    cls.submit = submit
