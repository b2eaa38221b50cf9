"""Include under ``imbot/``: ``path("imbot/", include("imbot_app.urls"))``."""

from django.urls import path

from .views import EventView

app_name = "imbot_app"

urlpatterns = [
    path("events/", EventView.as_view(), name="events"),
]
