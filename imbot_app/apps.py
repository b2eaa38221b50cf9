from django.apps import AppConfig


class ImbotAppConfig(AppConfig):
    """Registers the system checks when Django starts."""

    name = "imbot_app"
    verbose_name = "Bitrix24 chat bots"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
