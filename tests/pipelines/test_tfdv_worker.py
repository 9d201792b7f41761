"""The TFDV worker answers /health while it validates, drops idle connections, and a worker
that does not answer in time (or is busy) makes the task validate by itself, never hang."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.ingest_data_gen import write_large_file
from pipelines.config import load_pipeline_settings
from pipelines.ingestion.result import ValidationResult
from pipelines.ingestion.tasks import validation_config
from pipelines.ingestion.tfdv_worker import (
    WorkerSettings,
    WorkerUnavailable,
    make_server,
    validate_claimed,
    validate_via_worker,
)
from pipelines.ingestion.validate import FILE_TOO_LARGE

pytestmark = pytest.mark.timeout(300)


def _health(url: str) -> tuple[dict, float]:
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
        return json.loads(answer.read()), time.monotonic() - started


def test_the_worker_answers_health_while_it_validates(tfdv_worker, data_dir):
    path = data_dir / "raw-data" / "long.csv"
    expected = write_large_file(path, 400_000, 0.1)
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(data_dir)}))
    config |= {"tfdv_max_rows": 100_000}  # TFDV judges a sample; the row checks every row
    outcome: dict = {}

    def post() -> None:
        outcome["result"] = validate_via_worker(tfdv_worker, str(path), config, timeout_s=240)

    thread = threading.Thread(target=post)
    thread.start()
    seen, slowest = [], 0.0
    while thread.is_alive():
        health, seconds = _health(tfdv_worker)
        seen.append(health["validating"])
        slowest = max(slowest, seconds)
        time.sleep(0.02)
    thread.join()
    assert "long.csv" in seen, seen  # answered during the validation, and said so
    assert slowest < 2.0
    result = ValidationResult.from_dict(outcome["result"])
    assert (result.rows_total, result.rows_invalid) == (expected["rows"], expected["bad_rows"])
    assert result.tfdv_rows == 100_000 and {d.window_rows for d in result.drift} == {100_000}


@pytest.fixture
def worker_here(tmp_path: Path) -> Iterator[str]:
    """The worker's own server in this process (no TFDV needed for files it refuses unread)."""
    server = make_server(WorkerSettings(port=0, data_dir=tmp_path.resolve(), idle_timeout_s=0.5,
                                        queue_s=0.0))  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_worker_drops_idle_connections_and_refuses_what_it_must(worker_here, tmp_path):
    port = int(worker_here.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as idle:
        started = time.monotonic()
        assert idle.recv(1024) == b""  # closed by the worker, not by our 5 s timeout
        assert time.monotonic() - started < 3
    assert _health(worker_here)[0] == {"status": "ok", "validating": None}
    with pytest.raises(RuntimeError, match="403"):
        validate_via_worker(worker_here, "/etc/passwd", {}, timeout_s=5)


class _Silent(BaseHTTPRequestHandler):
    """Reads the request, then says nothing until the test ends."""

    release = threading.Event()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.release.wait(60)

    def log_message(self, *args):
        pass


class _Busy(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"detail": "busy"}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(handler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    _Silent.release.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def _too_large(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "big--1.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 300_000)  # 1.1 MB, over a 1 MB limit
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(tmp_path)}))
    return path, config | {"max_file_mb": 1}


def test_a_silent_worker_makes_the_task_validate_by_itself(serve, tmp_path, caplog):
    url = serve(_Silent)
    path, config = _too_large(tmp_path)
    with pytest.raises(WorkerUnavailable, match="no answer within 1 s"):
        validate_via_worker(url, str(path), config, timeout_s=1)
    started = time.monotonic()
    result = ValidationResult.from_dict(validate_claimed(str(path), config, url, timeout_s=1))
    assert time.monotonic() - started < 10
    assert result.issues[0].error_type == FILE_TOO_LARGE and result.rows_total == 300_000
    assert "unavailable (no answer within 1 s); importing TFDV in this task" in caplog.text


def test_a_busy_or_absent_worker_makes_the_task_validate_by_itself(serve, tmp_path):
    path, config = _too_large(tmp_path)
    busy = serve(_Busy)
    with pytest.raises(WorkerUnavailable, match="busy"):
        validate_via_worker(busy, str(path), config, timeout_s=5)
    absent = "http://127.0.0.1:9"
    for url in (busy, absent):
        result = validate_claimed(str(path), config, url, timeout_s=5)
        assert result["issues"][0]["error_type"] == FILE_TOO_LARGE


def test_one_validation_at_a_time_and_a_second_request_is_told_busy(worker_here, tmp_path):
    # Refused unread for its size, yet its rows are counted: a few seconds of real work.
    path = tmp_path / "huge--1.csv"
    with open(path, "wb") as out:
        for _ in range(60):
            out.write(b"a\n" * (1 << 20))  # 120 MB of short lines
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(tmp_path)}))
    config |= {"max_file_mb": 1}
    first: dict = {}
    thread = threading.Thread(
        target=lambda: first.update(validate_via_worker(worker_here, str(path), config, 60))
    )
    thread.start()
    deadline = time.monotonic() + 30
    while _health(worker_here)[0]["validating"] != path.name:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.01)
    with pytest.raises(WorkerUnavailable, match="busy"):  # the worker's queue_s is 0
        validate_via_worker(worker_here, str(path), config, timeout_s=5)
    thread.join()
    assert first["rows_total"] == 60 * (1 << 20) - 1
