"""The floor for bench/worker.py's webhook figures: the example project's URLs plus
``POST /bench/floor/``, a bare Django view that parses the same form body and inserts one row
(the bench creates the table)."""

from __future__ import annotations

import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

FLOOR_TABLE = "bench_floor"


@csrf_exempt
def floor(request: HttpRequest) -> JsonResponse:
    data = {key: request.POST.getlist(key) for key in request.POST}
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FLOOR_TABLE} (payload) VALUES (%s)", [json.dumps(data)])  # noqa: S608
    return JsonResponse({"status": "accepted"})


urlpatterns = [
    path("bench/floor/", floor),
    path("imbot/", include("imbot_app.urls")),
]
