from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("imbot/", include("imbot_app.urls")),  # Bitrix24 posts to /imbot/events/
]
