"""fedkit's own Flower apps: the ServerApp, the ClientApp, the round loop and checkpoints.

The app objects live in :mod:`fedkit.flower.apps.server_app` and
:mod:`fedkit.flower.apps.client_app` (Flower loads them by the names in ``pyproject.toml``);
what both sides build from the run config (data, model, client id) is in
:mod:`fedkit.flower.apps.task`. See docs/design.md, "Round loop".
"""
