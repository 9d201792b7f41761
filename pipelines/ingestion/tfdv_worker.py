"""A warm TFDV process: validates files on request so that runs skip the 15-22 s import.

    .venvs/tfdv/bin/python -m pipelines.ingestion.tfdv_worker [--port 8790]

`make up` starts it; the `validate_data` task (in the `tfdv` environment) sends it the claimed
file's path and falls back to importing TFDV itself when the worker is not reachable, busy for
longer than it will wait, or silent past TFDV_WORKER_TIMEOUT_S, so the worker is an
optimisation, never a dependency, and a task never hangs on it.

It listens on 127.0.0.1 only and reads only paths under DATA_DIR. Each connection has its own
thread, so `/health` answers while a file is validated; validations run one at a time behind a
lock (TFDV is not shown to be thread-safe, and two large files at once would double the memory):
a request waits for the lock up to TFDV_WORKER_QUEUE_S, then gets 503 "busy". A connection that
sends nothing for TFDV_WORKER_IDLE_TIMEOUT_S is closed. Settings: `WorkerSettings`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlsys.features import SchemaError

log = logging.getLogger("tfdv_worker")

MAX_REQUEST_BYTES = 1 << 20  # a path and a config: a few hundred bytes
SCHEMA_INVALID = "schema_invalid"  # the 422 answer when the curated schema cannot be used


class WorkerUnavailable(RuntimeError):
    """No worker answers at the configured URL, it is busy, or it did not answer in time."""


@dataclass(frozen=True)
class WorkerSettings:
    """The worker's own settings, from environment variables (documented in .env.example)."""

    port: int  # TFDV_WORKER_PORT (8790)
    data_dir: Path  # DATA_DIR: only files below it are validated
    idle_timeout_s: float  # TFDV_WORKER_IDLE_TIMEOUT_S (30): a silent connection is closed
    queue_s: float  # TFDV_WORKER_QUEUE_S (60): wait for a running validation, then 503

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> WorkerSettings:
        from mlsys.config import env_float, env_int, get_settings, load_settings

        core = get_settings() if env is None else load_settings(env)
        env = dict(os.environ if env is None else env)
        return cls(
            port=env_int(env, "TFDV_WORKER_PORT", 8790, low=1, high=65535),
            data_dir=core.data_dir.resolve(),
            idle_timeout_s=env_float(env, "TFDV_WORKER_IDLE_TIMEOUT_S", 30.0, low=0.1, high=3600),
            queue_s=env_float(env, "TFDV_WORKER_QUEUE_S", 60.0, low=0.0, high=3600),
        )


def validate_via_worker(url: str, path: str, config: dict[str, Any], timeout_s: float) -> dict:
    """POST one validation; returns the result as a dict (`ValidationResult.to_dict()`).

    Raises WorkerUnavailable when nothing answers, the worker is busy (503), or no answer came
    within `timeout_s` seconds of silence; SchemaError (one line: which file, what is wrong)
    when the curated schema cannot be read or parsed (422); RuntimeError when the validation
    itself failed (500, with the worker's traceback).
    """
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
        detail = exc.read().decode(errors="replace")[:2000]
        if exc.code == 503:
            raise WorkerUnavailable(f"busy: {detail}") from exc
        if exc.code == 422:
            answer: Any = None
            with contextlib.suppress(ValueError):
                answer = json.loads(detail)
            if isinstance(answer, dict) and answer.get("error") == SCHEMA_INVALID:
                raise SchemaError(str(answer.get("detail"))) from None
        raise RuntimeError(f"TFDV worker failed ({exc.code}): {detail}") from exc
    except TimeoutError as exc:
        raise WorkerUnavailable(f"no answer within {timeout_s:g} s") from exc
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException) as exc:
        raise WorkerUnavailable(str(exc)) from exc


def validate_claimed(
    path: str, config: dict[str, Any], worker_url: str | None, timeout_s: float
) -> dict[str, Any]:
    """What the `validate_data` task runs: the warm worker if it answers, else TFDV here.

    Returns `ValidationResult.to_dict()` (small: counts and a pointer to the reasons file).
    """
    if worker_url:
        try:
            return validate_via_worker(worker_url, path, config, timeout_s)
        except WorkerUnavailable as exc:
            log.warning(
                "TFDV worker at %s unavailable (%s); importing TFDV in this task", worker_url, exc
            )
    from pipelines.ingestion.validate import ValidationConfig, validate_file

    return validate_file(Path(path), ValidationConfig.from_dict(config)).to_dict()


class Validator:
    """One validation at a time; remembers what it is doing for /health."""

    def __init__(self, validate, queue_s: float) -> None:
        self._validate = validate
        self._lock = threading.Lock()
        self.queue_s = queue_s
        self.current: str | None = None

    def run(self, path: Path, config: dict[str, Any]) -> dict[str, Any] | None:
        """The result, or None when another validation held the lock for queue_s seconds."""
        if not self._lock.acquire(timeout=self.queue_s):
            return None
        try:
            self.current = path.name
            started = time.perf_counter()
            result = self._validate(path, config)
            log.info("validated %s in %.2f s", path.name, time.perf_counter() - started)
            return result
        finally:
            self.current = None
            self._lock.release()

    def exclusive(self, label: str, work, *args) -> Any | None:
        """Run `work(*args)` under the same lock as validations (TFDV is not shown to be
        thread-safe); None when the lock was not free within queue_s seconds."""
        if not self._lock.acquire(timeout=self.queue_s):
            return None
        try:
            self.current = label
            return work(*args)
        finally:
            self.current = None
            self._lock.release()


def _draft_schema_changes(body: dict[str, Any]) -> dict[str, Any]:
    """POST /schema-drafts: TFDV's update_schema on proposals' evidence (text in, text out: no
    file is read). pipelines/proposals/draft.py."""
    from pipelines.proposals.draft import draft_all

    return {"drafts": draft_all(body["schema_text"], body["candidates"])}


def _validate_file(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    from pipelines.ingestion.validate import ValidationConfig, validate_file

    return validate_file(path, ValidationConfig.from_dict(config)).to_dict()


def make_handler(allowed_root: Path, validator: Validator, idle_timeout_s: float):
    class Handler(BaseHTTPRequestHandler):
        # Socket timeout of the connection (StreamRequestHandler applies it): a client that
        # opens a connection and sends nothing, or trickles, is dropped after this long.
        timeout = idle_timeout_s

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "30")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/health":
                self._answer(200, {"status": "ok", "validating": validator.current})
            else:
                self._answer(404, {"detail": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/schema-drafts":
                self._drafts()
                return
            if self.path != "/validate":
                self._answer(404, {"detail": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_REQUEST_BYTES:
                self._answer(413, {"detail": f"a body of 1 to {MAX_REQUEST_BYTES} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                path = Path(body["path"]).resolve()
                if not path.is_relative_to(allowed_root):
                    self._answer(403, {"detail": f"{path} is outside {allowed_root}"})
                    return
                result = validator.run(path, body["config"])
            except SchemaError as exc:  # the curated schema, not the file: say so in one line
                self._answer(422, {"error": SCHEMA_INVALID, "detail": str(exc)})
                return
            except Exception:  # report it to the task, which fails and retries
                self._answer(500, {"detail": traceback.format_exc()})
                return
            if result is None:
                self._answer(503, {"detail": f"busy with {validator.current or 'a file'} "
                                             f"for over {validator.queue_s:g} s"})  # fmt: skip
            else:
                self._answer(200, result)

        def _drafts(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_REQUEST_BYTES:
                self._answer(413, {"detail": f"a body of 1 to {MAX_REQUEST_BYTES} bytes"})
                return
            try:
                body = json.loads(self.rfile.read(length))
                result = validator.exclusive("schema drafts", _draft_schema_changes, body)
            except Exception:  # report it to the caller
                self._answer(500, {"detail": traceback.format_exc()})
                return
            if result is None:
                self._answer(503, {"detail": f"busy with {validator.current or 'a file'}"})
            else:
                self._answer(200, result)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug(fmt, *args)

    return Handler


def make_server(settings: WorkerSettings) -> ThreadingHTTPServer:
    """The worker's HTTP server on 127.0.0.1 (port 0: any free port), not yet serving."""
    validator = Validator(_validate_file, settings.queue_s)
    server = ThreadingHTTPServer(
        ("127.0.0.1", settings.port),
        make_handler(settings.data_dir, validator, settings.idle_timeout_s),
    )
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.ingestion.tfdv_worker")
    parser.add_argument("--port", type=int, help="default: TFDV_WORKER_PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = WorkerSettings.from_env()
    if args.port is not None:
        settings = WorkerSettings(args.port, settings.data_dir, settings.idle_timeout_s,
                                  settings.queue_s)  # fmt: skip
    started = time.perf_counter()
    import tensorflow_data_validation  # noqa: F401  (the point of this process: import once)

    log.info("TFDV imported in %.1f s", time.perf_counter() - started)
    server = make_server(settings)
    log.info(
        "TFDV worker listening on 127.0.0.1:%d for files under %s",
        settings.port,
        settings.data_dir,
    )
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
