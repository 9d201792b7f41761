"""Cost of the unseen-value flag: `python -m bench unseen` (part of `make bench`).

Issue 16 point 4 adds, to every prediction, the check of its values against the model's
training values (`mlsys.training_values.UnseenCheck`) and the mapping of the serving schema's
category codes to the model's (`LoadedModel.to_model_codes`). Both must leave the API's speed
as it was. CPU time (not wall-clock: the machines are shared) of each, in process, on a model
trained as `make train` trains it, beside references measured in the same run: parsing and
validating the same body (the request's own work before the model) and predicting it.

Goals: for one record, the added work under 2% of the service's CPU per single prediction
(0.24 ms, measured by `make bench BENCH=service` on a quiet machine, docs/service.md: 4.8 us);
for a 10,000-record batch, under 5% of parsing and validating it. Knobs:
BENCH_UNSEEN_REPEATS (default 20,000 single-record repetitions).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from mlsys import model
from mlsys.config import get_settings
from mlsys.schema_versions import read_snapshot
from service.validation import RecordValidator, parse_predict_request

REPEATS = int(os.environ.get("BENCH_UNSEEN_REPEATS", 20_000))
# The service's CPU per single prediction (bench/service_bench.py, 4 clients, on a quiet
# machine: the figures quoted in docs/service.md).
SERVICE_CPU_PER_REQUEST_US = 240.0
BATCH = 10_000


def cpu_us(call: Callable[[], object], n: int) -> float:
    """User+system CPU microseconds per call of `call`, over `n` calls."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(n):
        call()
    after = resource.getrusage(resource.RUSAGE_SELF)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return spent / n * 1e6


def main() -> int:
    settings = get_settings()
    snapshot = read_snapshot(settings.schema_path)
    spec = snapshot.feature_spec(settings.target_column)
    frame = pd.read_csv(settings.dataset_path)
    result = model.train(
        frame, spec, target=settings.target_column, positive_class=settings.positive_class,
        dataset=str(settings.dataset_path), schema_version=snapshot.version,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        model.save(result, Path(tmp))
        loaded = model.load(Path(tmp))
    validator = RecordValidator(spec)
    records = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in frame[spec.names].to_dict("records")
    ]
    one = orjson.dumps({"source": "webapp", "records": records[3:4]})
    request = parse_predict_request(one, validator, max_records=BATCH)

    parse = cpu_us(lambda: parse_predict_request(one, validator, max_records=BATCH), REPEATS)
    predict = cpu_us(lambda: loaded.predict_rows(request.matrix), REPEATS)
    flags = cpu_us(lambda: loaded.unseen.flags(request.records, request.matrix), REPEATS)
    codes = cpu_us(lambda: loaded.to_model_codes(request.matrix, spec), REPEATS)
    added_one, reference_one = flags + codes, parse + predict

    batch = [records[i % len(records)] for i in range(BATCH)]
    body = orjson.dumps({"source": "webapp", "records": batch})
    big = parse_predict_request(body, validator, max_records=BATCH)
    rounds = max(3, REPEATS // 1000)
    validate_ms = cpu_us(lambda: parse_predict_request(body, validator, max_records=BATCH), rounds) / 1e3  # fmt: skip
    matrix = np.array(big.matrix)
    flags_ms = cpu_us(lambda: loaded.unseen.flags(big.records, matrix), rounds) / 1e3
    python_ms = cpu_us(lambda: loaded.unseen.flags_of_records(big.records), rounds) / 1e3
    codes_ms = cpu_us(lambda: loaded.to_model_codes(matrix, spec), rounds) / 1e3
    added_batch = flags_ms + codes_ms

    load = os.getloadavg()[0]
    ok_one = added_one < 0.02 * SERVICE_CPU_PER_REQUEST_US
    ok_batch = added_batch < 0.05 * validate_ms
    print(f"load average (1 min): {load:.1f}; CPU time per call, in process")
    print(
        f"one record: unseen check {flags:.1f} us + code mapping {codes:.1f} us = "
        f"{added_one:.1f} us | reference parse+validate {parse:.1f} us + predict {predict:.1f} us"
        f" = {reference_one:.1f} us; {added_one / SERVICE_CPU_PER_REQUEST_US:.1%} of the "
        f"service's {SERVICE_CPU_PER_REQUEST_US:.0f} us per single prediction "
        f"(goal < 2%: {'PASS' if ok_one else 'FAIL'})"
    )
    print(
        f"{BATCH:,}-record batch: unseen check {flags_ms:.2f} ms (numpy; in Python it would be "
        f"{python_ms:.2f} ms) + code mapping {codes_ms:.2f} ms | reference parse+validate "
        f"{validate_ms:.1f} ms ({added_batch / validate_ms:.1%}; goal < 5%: "
        f"{'PASS' if ok_batch else 'FAIL'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
