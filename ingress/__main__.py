"""``python -m ingress``: serve the ingress app with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import uvicorn

from infra import bootstrap
from infra.logs import setup_logging
from ingress.app import Ingress


def main() -> None:
    settings = bootstrap.settings()
    setup_logging(settings.log_level)
    # The live config (hot reload) is opened at lifespan startup, on uvicorn's event loop.
    app = Ingress(None, bootstrap.nats_url(settings), open_config=lambda: bootstrap.live_config(settings, "ingress"))
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
