"""``durable server``: the HTTP API (`durable.server`) on uvicorn.

    durable server --db postgresql://app@db/app --host 0.0.0.0 --token "$TOKEN"

Binds 127.0.0.1:8233 by default and refuses a non-loopback host without a token
(``--token`` or ``$DURABLE_TOKEN``). On Ctrl-C or SIGTERM it stops accepting requests, ends
long polls and event streams at once, and waits briefly for requests in flight.
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from .. import gcpolicy
from ..client import Client
from ..urls import redact_url
from .commands import Refused

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "GRACE_SECONDS", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8233
GRACE_SECONDS = 5  # how long a shutdown waits for requests in flight before cutting them


def _modules() -> tuple[Any, Any]:
    try:
        import uvicorn

        from .. import server
    except ImportError as exc:
        raise Refused(
            f"durable server needs starlette and uvicorn ({exc}): "
            "pip install 'durable-flow[server]'"
        ) from None
    return uvicorn, server


async def serve(args: argparse.Namespace) -> int:
    """Run the server until a signal stops it."""
    from ..server.auth import check_exposure

    token = args.token or os.environ.get("DURABLE_TOKEN") or None
    try:
        check_exposure(args.host, token)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    uvicorn, server = _modules()

    class Server(uvicorn.Server):  # type: ignore[misc,name-defined]
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            service.close()  # long polls and event streams end now, not at the grace's end
            if sig == signal.SIGTERM:
                # A supervisor's stop is a graceful exit (status 0), as for `durable
                # worker`; uvicorn would re-raise it once stopped and die of it.
                self._captured_signals.remove(sig)

    async with Client(args.db) as client:
        await client._open()  # a bad URL or an unreachable database fails here, said plainly
        app = server.create_app(client, token)
        service = app.state.durable
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            lifespan="off",
            timeout_graceful_shutdown=GRACE_SECONDS,
            log_level="info" if args.verbose else "warning",
        )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"durable server on http://{shown}:{args.port} for {redact_url(client.url)}"
            f"{' (token required)' if token else ''}; API description at /openapi.json. "
            "Ctrl-C stops.",
            flush=True,
        )
        # The console keeps big runs' steps built (durable.console.pages): with Python's
        # default thresholds the collector walks them over and over (durable.gcpolicy).
        gcpolicy.worker_started()
        try:
            await Server(config).serve()
        finally:
            gcpolicy.worker_stopped()
    return 0
