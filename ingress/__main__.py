"""``python -m ingress``: serve the ingress app with uvicorn (uvloop + httptools, bounded by
``ingress/http_protocol.py``).

The listening socket is opened with ``SO_REUSEPORT``: ``gateway up`` runs two ingress processes on one
port, the kernel spreads new connections over both, and one that dies only cuts the connections it held.
"""

from __future__ import annotations

import socket

import uvicorn

from infra import bootstrap, nats_identity
from infra.logs import setup_logging
from ingress.admission import Overload
from ingress.app import Ingress
from ingress.http_protocol import edge_protocol


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def main() -> None:
    settings = bootstrap.settings()
    setup_logging(settings.log_level)
    # The live config (hot reload) is opened at lifespan startup, on uvicorn's event loop.
    app = Ingress(None, bootstrap.nats_url(settings), open_config=lambda: bootstrap.live_config(settings, "ingress"),
                  overload=Overload(target_ms=settings.shed_after_ms, max_pending=settings.max_pending),
                  open_keys=lambda config: bootstrap.key_directory(settings, config, "ingress"),
                  admin_key_sha256=settings.admin_key_sha256, envelope_key=settings.sealing_key(),
                  identity=nats_identity.identity(settings), body_timeout_s=settings.body_timeout_s,
                  max_file_bytes=settings.max_file_bytes)
    # httptools with the bounds uvicorn lacks (header size, count and time; refusals in the OpenAI shape)
    protocol = edge_protocol(settings.header_timeout_s, settings.max_header_bytes, settings.max_headers)
    config = uvicorn.Config(app, loop="uvloop", http=protocol, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5, backlog=4096)
    uvicorn.Server(config).run(sockets=[listening_socket(settings.host, settings.port)])


if __name__ == "__main__":
    main()
