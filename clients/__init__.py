"""Clients of the facecast API that live outside the `facecast` package (the Flet app)."""
