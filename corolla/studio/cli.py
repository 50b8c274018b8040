"""`corolla studio`: the whole loop in a browser (see docs/studio.md).

Example:
    corolla studio studio-work --root ~/Pictures
"""

from __future__ import annotations

import pathlib
from typing import Optional

import typer


def studio(
    workdir: pathlib.Path = typer.Argument(pathlib.Path("studio-work"), help="Folder holding the projects (each an ordinary corolla folder: data, runs, exports)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind. Anything but loopback needs an access token (one is made if --token is not given)."),
    port: int = typer.Option(8600, help="Port of the page."),
    root: Optional[pathlib.Path] = typer.Option(None, help="Folder (and below) whose pictures the page may import; without it the page takes uploads only."),
    token: Optional[str] = typer.Option(None, envvar="COROLLA_STUDIO_TOKEN", help="Access token the page and API ask for (required off loopback)."),
):
    """A local web app: bring pictures, train, review mistakes, try it and ship it, each step also shown as its CLI command."""
    import uvicorn
    from rich.console import Console
    from rich.markup import escape

    from corolla.studio.app import create_app, new_token
    from corolla.studio.security import is_loopback

    if not is_loopback(host) and not token:
        token = new_token()
    app = create_app(workdir, root=root, host=host, port=port, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/" + (f"?token={token}" if token else "")
    # soft_wrap: the URL stays on one line, whole, to copy (and for scripts that read it)
    Console(stderr=True).print(f"corolla studio: projects in {escape(str(pathlib.Path(workdir).resolve()))}; open [bold]{escape(url)}[/]", soft_wrap=True, highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command()(studio)
