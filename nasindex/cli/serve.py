"""``nasindex serve``: the HTTP API (JSON and DICOMweb). Imports the web stack only when
it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from nasindex.cli.options import settings


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Without [auth] "
                                      "only a loopback address is allowed.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8042,
) -> None:
    """Serve the HTTP API: /api/v1 (JSON), /dicomweb, OpenAPI at /api/docs."""
    from nasindex.api.server import serve as run_server

    run_server(settings(), host, port)
