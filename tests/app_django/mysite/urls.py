from django.urls import include, path, re_path

from mysite import views

urlpatterns = [
    path("", views.index),
    path("api/", include("mysite.api_urls")),
    re_path(r"^legacy/(?P<year>[0-9]{4})/$", views.legacy),
    path("error", views.error),
    path("missing", views.missing),
    path("stream", views.stream),
    path("ctx", views.ctx),
]
