"""`corolla serve` (and the serving tools) as Typer commands; `corolla.cli` registers them.

Example:
    register(app)  # adds `corolla serve`
"""

from __future__ import annotations

import pathlib
from typing import Optional

import typer


def serve(
    path: pathlib.Path = typer.Argument(..., help="An export folder (RUN_DIR/export), one version of it, or a run folder."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; use 0.0.0.0 only to expose the server on your network."),
    port: int = typer.Option(8501, help="Port (TF Serving's REST port by default)."),
    model_name: Optional[str] = typer.Option(None, help="Name in the URL /v1/models/NAME [default: the run folder's name]."),
):
    """Serve the newest exported version over TF Serving's REST API."""
    from corolla.serve.app import serve as run_serve

    run_serve(path, host=host, port=port, model_name=model_name)


def register(app: typer.Typer) -> None:
    """Add the serving commands to the `corolla` app."""
    app.command()(serve)
