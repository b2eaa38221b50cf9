"""imbot_app: Bitrix24 chat bots as ordinary Django.

Add ``"imbot_app"`` to ``INSTALLED_APPS``, include ``imbot_app.urls`` under ``imbot/`` and point
Bitrix24 at ``https://<your host>/imbot/events/``.
"""

__version__ = "0.1.0"
