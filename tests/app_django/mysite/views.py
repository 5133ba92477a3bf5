import time

from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse

try:  # only /ctx uses it, to show which span is current inside the view
    from ferrotel import _native
except ImportError:  # pragma: no cover - the app also runs without the agent
    _native = None


def index(request):
    return HttpResponse("hello")


def item(request, item_id):
    return JsonResponse({"item_id": item_id})


def legacy(request, year):
    return JsonResponse({"year": year})


def error(request):
    raise ValueError("boom")


def missing(request):
    raise Http404("no such thing")


def stream(request):
    def chunks():
        for i in range(3):
            if i:
                time.sleep(0.05)
            yield f"chunk{i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def ctx(request):
    span = _native.current_span() if _native is not None else None
    return JsonResponse({"span_id": span.span_id if span else None, "trace_id": span.trace_id if span else None})
