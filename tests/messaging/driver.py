"""Sends the messaging suite's tasks from an instrumented client process and prints what came back
as JSON (its last line). Each scenario runs under the application's own span "job" (the
OpenTelemetry API, bridged by ferrotel), so the test finds its trace.

    python driver.py failure|retry|canvas|eager|memory|unreachable
"""

import json
import sys


def job():
    from opentelemetry import trace

    return trace.get_tracer("celery-test-driver").start_as_current_span("job")


def main(mode):
    import tasks

    out = {}
    with job():
        if mode == "failure":
            r = tasks.fail.delay(7)
            exc = r.get(timeout=60, propagate=False)
            out = {"task_id": r.id, "state": r.state, "type": type(exc).__name__, "message": str(exc)}
        elif mode == "retry":
            r = tasks.flaky.delay(3)
            out = {"task_id": r.id, "result": r.get(timeout=60)}
        elif mode == "canvas":
            from celery import chain, chord, group

            out["chain"] = chain(tasks.add.s(1, 2), tasks.add.s(3))().get(timeout=60)
            out["group"] = group(tasks.add.s(i, i) for i in range(3))().get(timeout=60)
            out["chord"] = chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.total.s())().get(timeout=60)
            out["send_task"] = tasks.app.send_task("tasks.add", (20, 22)).get(timeout=60)
        elif mode == "eager":
            tasks.app.conf.task_always_eager = True
            r = tasks.add.delay(2, 3)
            out = {"result": r.get(), "failed": type(tasks.fail.apply((1,)).result).__name__}
        elif mode == "unreachable":
            # a broker that refuses connections, no publish retry: apply_async raises
            try:
                tasks.add.apply_async((1, 2), retry=False)
            except Exception as exc:
                out = {"raised": "%s.%s" % (type(exc).__module__, type(exc).__qualname__)}
        elif mode == "memory":
            # memory:// broker, no worker: the message is only sent; its headers are read back.
            r = tasks.add.apply_async((1, 2), headers={"app-header": "kept"})
            with tasks.app.connection_for_read() as conn:
                message = conn.SimpleQueue("jobs", no_ack=True).get(timeout=5)
            h = message.headers
            out = {"task_id": r.id, "traceparent": h.get("traceparent"), "app-header": h.get("app-header"), "id": h.get("id")}
    from ferrotel import _native

    _native.flush()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
