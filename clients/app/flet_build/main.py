"""Entry point of the mobile/desktop package built with `flet build` (see docs/clients.md)."""

from clients.app.main import run_native

run_native()
