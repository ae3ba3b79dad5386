"""The Typer command line: one module per command, joined in `main.app`."""
