"""A warm TFDV process: validates files on request so that runs skip the 15-22 s import.

    .venvs/tfdv/bin/python -m pipelines.ingestion.tfdv_worker --port 8790

`make up` starts it; the `validate_data` task (in the `tfdv` environment) sends it the claimed
file's path and falls back to importing TFDV itself when the worker is not reachable, so the
worker is an optimisation, never a dependency. It listens on 127.0.0.1 only, handles one
request at a time (TFDV is not shown to be thread-safe), and reads only paths under DATA_DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("tfdv_worker")


class WorkerUnavailable(RuntimeError):
    """No worker answers at the configured URL."""


def validate_via_worker(
    url: str, path: str, config: dict[str, Any], timeout_s: float = 120
) -> dict:
    request = urllib.request.Request(
        f"{url}/validate",
        data=json.dumps({"path": path, "config": config}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(
            f"TFDV worker failed: {exc.read().decode(errors='replace')[:2000]}"
        ) from exc
    except (urllib.error.URLError, ConnectionError) as exc:
        raise WorkerUnavailable(str(exc)) from exc


def validate_claimed(path: str, config: dict[str, Any], worker_url: str | None) -> dict[str, Any]:
    """What the `validate_data` task runs: the warm worker if there is one, else TFDV here."""
    if worker_url:
        try:
            return validate_via_worker(worker_url, path, config)
        except WorkerUnavailable as exc:
            log.warning(
                "TFDV worker at %s unavailable (%s); importing TFDV in this task", worker_url, exc
            )
    from pipelines.ingestion.validate import ValidationConfig, validate_file

    return validate_file(Path(path), ValidationConfig.from_dict(config))


def make_handler(allowed_root: Path):
    from pipelines.ingestion.validate import ValidationConfig, validate_file

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"detail": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/validate":
                self._answer(404, {"detail": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                path = Path(body["path"]).resolve()
                if not path.is_relative_to(allowed_root):
                    self._answer(403, {"detail": f"{path} is outside {allowed_root}"})
                    return
                started = time.perf_counter()
                result = validate_file(path, ValidationConfig.from_dict(body["config"]))
                log.info("validated %s in %.2f s", path.name, time.perf_counter() - started)
                self._answer(200, result)
            except Exception:  # report it to the task, which fails and retries
                self._answer(500, {"detail": traceback.format_exc()})

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

    return Handler


def main(argv: list[str] | None = None) -> int:
    from mlsys.config import get_settings

    parser = argparse.ArgumentParser(prog="python -m pipelines.ingestion.tfdv_worker")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    started = time.perf_counter()
    import tensorflow_data_validation  # noqa: F401  (the point of this process: import once)

    log.info("TFDV imported in %.1f s", time.perf_counter() - started)
    root = get_settings().data_dir.resolve()
    server = HTTPServer(("127.0.0.1", args.port), make_handler(root))
    log.info("TFDV worker listening on 127.0.0.1:%d for files under %s", args.port, root)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
