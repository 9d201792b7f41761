"""A database that is full, unreachable or hanging is a 503, never a 500 (issue 18, 2 and 9).

- full: a real server error of SQLSTATE class 53, raised by PostgreSQL itself through a
  trigger (`RAISE ... USING ERRCODE = 'disk_full'`, 53100) on the service's own INSERT and
  COPY, on both paths (group commit with asyncpg, the database threads with psycopg2);
- unreachable: a port nobody listens on;
- hanging: a real TCP proxy on 127.0.0.1 between the service and PostgreSQL, frozen (bytes
  are held, sockets stay open, the kernel keeps acknowledging: what a frozen VM or a
  partition looks like from the client, where neither statement_timeout nor TCP fires).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import orjson
import psycopg2
import pytest

from mlsys.api_auth import Role
from mlsys.db import psycopg2_dsn
from ops import pg
from service import launch
from service.openapi_docs import example_record
from tests.conftest import auth_headers
from tests.service.conftest import Api, service_env, start_api

DISK_FULL_TRIGGER = """
CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER test_disk_full BEFORE INSERT ON predictions
    FOR EACH ROW EXECUTE FUNCTION test_disk_full();
"""


@contextlib.contextmanager
def disk_full(database_url: str) -> Iterator[None]:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(DISK_FULL_TRIGGER)
    try:
        yield
    finally:
        with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
            cur.execute("DROP TRIGGER test_disk_full ON predictions")
            cur.execute("DROP FUNCTION test_disk_full()")


def padded(payload: dict) -> bytes:
    """Over API_INLINE_MAX_BODY_BYTES (trailing blanks are valid JSON): the database-thread
    path (psycopg2, COPY) instead of group commit."""
    return orjson.dumps(payload) + b" " * 17_000


def post(client: httpx.Client, payload: dict | bytes) -> httpx.Response:
    if isinstance(payload, bytes):
        return client.post(
            "/predict", content=payload, headers={"content-type": "application/json"}
        )
    return client.post("/predict", json=payload)


def test_a_full_database_is_a_503_on_every_write_path(api: Api, spec):
    small = {"source": "webapp", "records": [example_record(spec)]}  # group commit (asyncpg)
    batch = padded({"source": "webapp", "records": [example_record(spec, i) for i in range(50)]})
    scheduled = {
        "source": "scheduled", "source_file": f"full-{uuid.uuid4().hex}.csv",
        "source_rows": [0, 1], "records": [example_record(spec, 0), example_record(spec, 1)],
    }  # fmt: skip
    before = api.count()
    with disk_full(api.database_url):
        for payload in (small, batch, scheduled, small):
            answer = post(api.scheduler if payload is scheduled else api.client, payload)
            assert answer.status_code == 503, answer.text
            assert "No space left on device" in answer.json()["detail"]
            assert "nothing was stored" in answer.json()["detail"]
        assert api.client.get("/health").status_code == 200  # reads still work
    assert api.count() == before
    assert api.client.post("/predict", json=small).status_code == 200


def test_an_unreachable_database_is_a_503_everywhere(tmp_path, trained_model_dir, spec):
    closed = pg.free_port()  # nobody listens there
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{closed}/mlsys"
    env = service_env(url, trained_model_dir, tmp_path / "data", pg.free_port())
    proc, base = start_api(tmp_path, env)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=auth_headers(Role.WEBAPP)) as client:
            assert client.get("/health").status_code == 503
            big = padded(
                {"source": "webapp", "records": [example_record(spec, i) for i in range(50)]}
            )
            for payload in ({"source": "webapp", "records": [example_record(spec)]}, big):
                answer = post(client, payload)
                assert answer.status_code == 503, answer.text
                assert "nothing was stored" in answer.json()["detail"]
            assert client.get("/past-predictions").status_code == 503
    finally:
        launch.stop(proc)


class FreezableProxy:
    """TCP proxy on 127.0.0.1; `frozen` holds every byte in both directions, sockets open."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.frozen.clear()
        self.listener.close()
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()


def timed(call) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    answer = call()
    return answer, time.monotonic() - t0


def test_a_hanging_database_is_a_503_within_seconds_and_health_keeps_answering(
    tmp_path, api: Api, pg_server: pg.EmbeddedServer, trained_model_dir, spec
):
    proxy = FreezableProxy(pg_server.port)
    url = api.database_url.replace(f":{pg_server.port}/", f":{proxy.port}/")
    assert url != api.database_url
    env = service_env(
        url, trained_model_dir, tmp_path / "data", pg.free_port(),
        API_DB_REQUEST_TIMEOUT_S="2", API_HEALTH_TIMEOUT_S="1", API_DB_CONNECT_TIMEOUT_S="1",
    )  # fmt: skip
    proc, base = start_api(tmp_path, env)
    one = {"source": "webapp", "records": [example_record(spec)]}
    batch = padded({"source": "webapp", "records": [example_record(spec, i) for i in range(50)]})
    try:
        with httpx.Client(base_url=base, timeout=60, headers=auth_headers(Role.WEBAPP)) as client:
            for payload in (one, batch):  # both kinds of connection are open
                assert post(client, payload).status_code == 200
            assert client.get("/health").status_code == 200

            proxy.frozen.set()
            for _ in range(3):  # again and again: no thread or connection stays stuck
                for call in (
                    lambda: post(client, one),
                    lambda: post(client, batch),
                    lambda: client.get("/past-predictions"),
                ):
                    answer, seconds = timed(call)
                    assert answer.status_code == 503, answer.text
                    assert seconds < 5, seconds
                health, seconds = timed(lambda: client.get("/health"))
                assert health.status_code == 503 and seconds < 3, (health.text, seconds)
                assert "did not answer within 1 s" in health.json()["database"] or (
                    "unreachable" in health.json()["database"]
                )
                assert client.get("/livez").status_code == 200

            proxy.frozen.clear()
            deadline = time.monotonic() + 30
            while client.get("/health").status_code != 200:
                assert time.monotonic() < deadline, "no recovery after the database thawed"
                time.sleep(0.2)
            for payload in (one, batch):
                assert post(client, payload).status_code == 200
    finally:
        launch.stop(proc)
        proxy.close()


@pytest.mark.parametrize("code", ["08006", "53100", "53300", "57014", "57P01", "58030"])
def test_unavailable_sqlstate_classes(code):
    from service.db import is_unavailable_sqlstate

    assert is_unavailable_sqlstate(code)


@pytest.mark.parametrize("code", ["23505", "22P02", "42P01", "P0001", None, ""])
def test_other_sqlstates_are_not_unavailability(code):
    from service.db import is_unavailable_sqlstate

    assert not is_unavailable_sqlstate(code)
