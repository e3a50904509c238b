"""`python -m roundtrip_ml.cli`: the same as the `roundtrip` command."""

from .app import main

main()
