"""`python -m facecast.cli`: the `facecast` command."""

from facecast.cli import main

main()
