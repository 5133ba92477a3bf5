"""A Flask app whose `/limits` route adds more attributes, events and links through the
OpenTelemetry API than the span limits allow (`gunicorn app_limits:app`, in an app environment
with opentelemetry-api). It reports what the open spans hold, as the app sees them, before they end."""

import json

from flask import Flask

app = Flask(__name__)

N = 40  # more than any limit the test sets
LONG = "x" * 100


def _held(span):
    return {
        "attributes": dict(span.attributes),
        "events": [{"name": e.name, "attributes": dict(e.attributes)} for e in span.events],
        "links": [{"span_id": link.span_id, "attributes": dict(link.attributes)} for link in span.links],
        "dropped": [span.dropped_attributes, span.dropped_events, span.dropped_links],
    }


@app.route("/limits")
def limits():
    from opentelemetry import trace
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    def context(i):
        return SpanContext(0x1234 + i, 0x5678 + i, is_remote=True, trace_flags=TraceFlags(1))

    tracer = trace.get_tracer("test.app.limits")
    server = trace.get_current_span()
    for i in range(N):
        server.set_attribute("app.server.%02d" % i, LONG)
    start_links = [Link(context(i), {"l.%02d" % j: j for j in range(N)}) for i in range(N)]
    with tracer.start_as_current_span("limited", attributes={"start.%02d" % i: i for i in range(N)}, links=start_links) as span:
        span.set_attribute("start.00", LONG)  # replacing a kept key is always allowed
        for i in range(N):
            span.set_attribute("app.%02d" % i, LONG)
        span.set_attributes({"more.%02d" % i: [LONG, "y"] for i in range(N)})
        for i in range(N):
            span.add_event("event-%02d" % i, {"e.%02d" % j: LONG for j in range(N)})
        span.add_link(context(100), {"late": True})
        held = _held(span)
    return json.dumps({"manual": held, "server": _held(server)})
