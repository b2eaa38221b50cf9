"""A URLConf for tests/test_server_errors.py: the project's URLs plus a view that raises."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from project.urls import urlpatterns as project_urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("an unexpected bug")


urlpatterns = [*project_urlpatterns, path("boom/", boom)]
