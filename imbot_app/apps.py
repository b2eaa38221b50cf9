from importlib import import_module
from importlib.util import find_spec

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules


class ImbotAppConfig(AppConfig):
    """Registers the system checks, keeps secrets out of the HTTP library's logs, connects the
    built-in lifecycle handlers (bot registration on install and update, data clean-up on a
    CLEAN uninstall) and imports the handler modules when Django starts."""

    name = "imbot_app"
    verbose_name = "Bitrix24 chat bots"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from imbot_app import checks  # noqa: F401  (registers the checks)
        from imbot_app.lifecycle import handlers
        from imbot_app.logsafe import install_url_redaction

        install_url_redaction()
        self.check_dispatch_mode()
        handlers.connect()
        self.import_handler_modules()

    @staticmethod
    def check_dispatch_mode() -> None:
        """Refuse to start with a dispatch mode that would leave every event unhandled."""
        from imbot_app.conf import imbot_settings
        from imbot_app.dispatch.hooks import MODES

        mode = imbot_settings.DISPATCH
        if mode not in MODES:
            raise ImproperlyConfigured(f"IMBOT_DISPATCH must be one of {MODES}, not {mode!r}")
        if mode == "celery" and find_spec("celery") is None:
            raise ImproperlyConfigured(
                'IMBOT_DISPATCH is "celery" but Celery is not installed: '
                'pip install "imbot_app[celery]"'
            )

    @staticmethod
    def import_handler_modules() -> None:
        """Every installed app's ``imbot_handlers``, then each of ``IMBOT_HANDLER_MODULES``.

        Like admin autodiscovery: importing a module runs its routing decorators and
        ``@receiver`` lines.  An app without the module is skipped; an error inside one is not.
        """
        from imbot_app.conf import imbot_settings

        autodiscover_modules("imbot_handlers")
        for path in imbot_settings.HANDLER_MODULES:
            import_module(path)
