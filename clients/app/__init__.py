"""The facecast app: a Flet (Flutter) client for web, desktop, Android and iOS.

Start it with `python -m clients.app` (see docs/clients.md); `facecast_app_main` is the
entry point the `facecast app` command calls.
"""

from clients.app.main import facecast_app_main

__all__ = ["facecast_app_main"]
