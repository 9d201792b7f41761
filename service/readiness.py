"""Whether this process should be sent new requests: the state behind GET /readyz.

One uvicorn server runs per process (`service.serve`), so readiness is a property of the
process. It goes false when the process is told to stop (SIGTERM, `service.serve`) and stays
false: a load balancer that checks /readyz stops sending new requests while the process still
accepts and answers them, and only then does the process stop accepting (docs/scaling.md).
"""

from __future__ import annotations

import threading

_draining = threading.Event()


def begin_draining() -> None:
    """From now on GET /readyz answers 503; requests are still served as before."""
    _draining.set()


def is_draining() -> bool:
    return _draining.is_set()
