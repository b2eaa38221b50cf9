"""Include under ``imbot/``: ``path("imbot/", include("imbot_app.urls"))``.

``events/`` receives every Bitrix24 event; ``install/`` is the install page of an application
with a user interface (its "initial installation path").
"""

from django.urls import path

from imbot_app.web.install import InstallView
from imbot_app.web.views import EventView

app_name = "imbot_app"

urlpatterns = [
    path("events/", EventView.as_view(), name="events"),
    path("install/", InstallView.as_view(), name="install"),
]
