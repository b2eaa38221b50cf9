"""Chat-bot API v1 (``imbot.*`` methods, ``ONIMBOT*`` events, PHP bracket forms).

Everything here knows v1's field and method names: ``events`` turns a payload into the typed,
version-free events of :mod:`imbot_app.events`; ``methods`` turns typed replies and
registrations into v1 REST calls.  Nothing outside :mod:`imbot_app.protocol` imports this
package: the registry there picks it.
"""
