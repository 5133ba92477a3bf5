"""A one-file Django app that configures its settings itself: `gunicorn single:application`.

`settings.configure()` raises if anything touched the settings before it (the failure mode of
agents that configure Django at start-up), so this app booting at all is part of the test.
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="ferrotel-single-file",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    TEMPLATES=[],
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request, name):
    return HttpResponse("hello " + name)


def error(request):
    raise KeyError("single-file failure")


urlpatterns = [path("hello/<str:name>", hello), path("error", error)]

application = get_wsgi_application()
