"""fem: learn-to-reason experiments by filtered expectation-maximization.

The package is a library first; `fem_cli.cli` is a thin Typer layer over it.
"""

__version__ = "0.1.0"
