"""`python -m clients.app [--host H] [--port P] [--server URL] [--desktop]`."""

from __future__ import annotations

import argparse

from clients.app.main import DEFAULT_SERVER, facecast_app_main


def main() -> None:
    """Parse the command line and serve the app."""
    parser = argparse.ArgumentParser(prog="python -m clients.app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="Address the app listens on.")
    parser.add_argument("--port", type=int, default=8550, help="Port of the app.")
    parser.add_argument(
        "--server", default=None, help=f"facecast API URL (default {DEFAULT_SERVER})."
    )
    parser.add_argument("--desktop", action="store_true", help="Open a desktop window instead.")
    args = parser.parse_args()
    facecast_app_main(args.host, args.port, args.server, web=not args.desktop)


if __name__ == "__main__":
    main()
