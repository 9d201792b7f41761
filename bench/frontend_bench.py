"""Benchmark of the web UI's CSV path: checking a file, then sending it in chunks.

Figures: `frontend.upload_checks.parse_upload` (read, check every value, build records) on 1k, 10k and
100k rows beside a bare `pandas.read_csv` of the same bytes (the reference: reading without any
check); then 10,000 records sent to a real service through `send_in_chunks` with several
`UI_BATCH_RECORDS` values, beside one single request (the reference: no chunking), on a
throw-away PostgreSQL and a model trained into a temporary folder.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.scratch import scratch_database
from bench.service_bench import train_into
from frontend.api_client import ApiClient, parse_model_info
from frontend.chunked_sending import send_in_chunks
from frontend.upload_checks import parse_upload
from mlsys.api_auth import TOKEN_NAMES, Role, ensure_local_credentials
from mlsys.config import get_settings
from mlsys.credentials import resolve_secret
from mlsys.features import get_feature_spec
from ops import pg


def applications(rows: int) -> pd.DataFrame:
    s = get_settings()
    frame = pd.read_csv(s.dataset_path).drop(columns=[s.target_column])
    return pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).iloc[:rows]


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_parse(features) -> None:
    print("checking a CSV (best of 3):")
    for rows in (1_000, 10_000, 100_000):
        data = applications(rows).to_csv(index=False).encode()
        ours = best_of(3, lambda d=data: parse_upload(d, features, max_bytes=len(d)))
        bare = best_of(3, lambda d=data: pd.read_csv(io.BytesIO(d), dtype=str))
        print(
            f"  {rows:>7,} rows ({len(data) / 1e6:4.1f} MB): parse_upload {ours * 1000:7.0f} ms "
            f"({rows / ours:>9,.0f} rows/s) | reference pandas.read_csv {bare * 1000:5.0f} ms"
        )


def bench_send(features) -> None:
    from service.launch import spawn, stop, wait_until_serving

    with tempfile.TemporaryDirectory(prefix="frontend-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with scratch_database(tmp, "bench") as url:
            train_into(tmp / "models", get_feature_spec())
            port = pg.free_port()
            ensure_local_credentials(tmp / "var")  # as `make up` does: the API needs its tokens
            token = resolve_secret(TOKEN_NAMES[Role.WEBAPP], tmp / "var", {})
            env = {"DATABASE_URL": url, "MODEL_DIR": str(tmp / "models"),
                   "DATA_DIR": str(tmp / "data"), "VAR_DIR": str(tmp / "var"),
                   "API_PORT": str(port)}  # fmt: skip
            proc = spawn(env, tmp / "api.log")
            try:
                api_url = f"http://127.0.0.1:{port}"
                wait_until_serving(proc, api_url)
                records = parse_upload(
                    applications(10_000).to_csv(index=False).encode(), features, max_bytes=1 << 30
                ).records
                print("sending 10,000 records to the service (each run stores them):")
                with ApiClient(api_url, timeout_s=120, token=token) as api:
                    for size in (100, 500, 2_000, 10_000):
                        started = time.perf_counter()
                        outcome = send_in_chunks(api, records, chunk_size=size)
                        took = time.perf_counter() - started
                        assert outcome.complete, outcome.error
                        label = "reference, one request" if size == 10_000 else "chunks"
                        print(
                            f"  {label:>22} of {size:>6,}: {took:6.2f} s "
                            f"({len(records) / took:>7,.0f} records/s)"
                        )
            finally:
                stop(proc)


def main() -> int:
    spec = get_feature_spec()
    features = parse_model_info({"version": "bench", **spec.to_dict()}).features
    bench_parse(features)
    bench_send(features)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
