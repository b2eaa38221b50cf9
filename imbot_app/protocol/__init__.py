"""Everything that knows an API version's field and method names (Chatbots 1.0 and 2.0).

``protocol.v2`` turns ``imbot.v2`` payloads into the version-free typed events of
:mod:`imbot_app.events` and typed replies or registrations into ``imbot.v2.*`` REST calls.
The registry that picks a version per bot lives here once the v1 adapter moves in.
"""
