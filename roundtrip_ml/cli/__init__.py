"""The `roundtrip` command: a thin Typer layer over the API."""
