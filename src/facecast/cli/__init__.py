"""The `facecast` command: a thin shell over the pipeline and the service.

`base` holds the group and what the commands share; each other module registers its commands
on `main` when imported.
"""

from facecast.cli import batch, models, render, service, speech
from facecast.cli.base import main

__all__ = ["main"]
_COMMANDS = (batch, models, render, service, speech)
"""Imported for their side effect: each registers its commands on `main`."""
