"""One API process: `python -m service.serve --host H --port P [--drain-s S]`.

uvicorn's own server, with one change to how it stops (`DrainingServer`): on the first
SIGTERM the process first turns GET /readyz to 503 and goes on accepting and answering for
`--drain-s` seconds, long enough for the balancer's health check to take it out of the
rotation; only then does uvicorn's graceful shutdown run (stop accepting, finish the requests
in flight, close idle keep-alive connections, run the lifespan's shutdown). A second SIGTERM,
or SIGINT, stops at once (still gracefully). Started by `service.launch` (one process) and
`service.fleet` (several behind haproxy), and in docker compose as each `api` replica.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

import uvicorn

from service import readiness
from service.config import get_service_settings


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM first drains (readiness false) for `drain_s` seconds."""

    def __init__(self, config: uvicorn.Config, *, drain_s: float) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_s > 0 and self.drain_until is None:
            readiness.begin_draining()
            self.drain_until = time.monotonic() + self.drain_s
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        # uvicorn's main loop calls this every 0.1 s; True starts its graceful shutdown.
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def config(host: str, port: int) -> uvicorn.Config:
    conf = get_service_settings()
    return uvicorn.Config(
        "service.main:app",
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=conf.access_log,
        # X-Forwarded-For/-Proto are believed only from the balancer's address.
        proxy_headers=True,
        forwarded_allow_ips=list(conf.forwarded_allow_ips),
        # Longer than haproxy keeps an idle connection to us, so that the balancer, not the
        # server, closes idle connections: no request is sent on a connection being closed.
        timeout_keep_alive=conf.keep_alive_s,
        timeout_graceful_shutdown=conf.graceful_shutdown_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.serve", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--drain-s", type=float, default=None, help="seconds of draining (default API_DRAIN_S)"
    )
    args = parser.parse_args(argv)
    drain_s = get_service_settings().drain_s if args.drain_s is None else args.drain_s
    DrainingServer(config(args.host, args.port), drain_s=drain_s).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
