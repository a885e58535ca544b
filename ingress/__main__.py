"""``python -m ingress``: serve the ingress app with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import uvicorn

from infra import bootstrap
from infra.logs import setup_logging
from ingress.app import Ingress


def main() -> None:
    settings = bootstrap.settings()
    setup_logging(settings.log_level)
    app = Ingress(bootstrap.config(settings), bootstrap.nats_url(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
