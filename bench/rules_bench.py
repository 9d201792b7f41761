"""The rules of a valid value (`mlsys.rules`), in process: `python -m bench rules`.

Figures, each beside a reference measured in the same run on the same data (CPU seconds of
this process, best of several rounds, so that other processes on these shared 2-core machines
disturb them less than wall time would):

1. the API's validation step (`service.validation.RecordValidator.validate`, the rules
   precompiled) on a clean 10,000-record batch and on one record; reference: parsing the same
   JSON body (jiter), the step before it on every request;
2. `mlsys.rules.check_frame` (the UI's and, through `mlsys.rowchecks`, the ingestion's check)
   and `mlsys.rules.to_records` (the UI's and the prediction DAG's conversion) on 100,000 text
   rows with 10% bad cells; reference: reading the same CSV bytes (`mlsys.csvfile.read_csv`).
"""

from __future__ import annotations

import io
import sys
import time

ROUNDS = 7
SINGLE_REPEATS = 5000


def best_cpu(rounds: int, func) -> float:
    """The least CPU time (process_time, seconds) of `rounds` calls of `func`."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        func()
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    import jiter
    import numpy as np
    import orjson
    import pandas as pd

    from mlsys import csvfile, rules
    from mlsys.config import get_settings
    from mlsys.features import get_feature_spec
    from service.validation import RecordValidator

    spec = get_feature_spec()
    frame = pd.read_csv(get_settings().dataset_path)[spec.names]
    records = orjson.loads(frame.to_json(orient="records"))
    batch = (records * (10_000 // len(records) + 1))[:10_000]
    body = orjson.dumps({"source": "webapp", "records": batch})
    one = orjson.dumps({"source": "webapp", "records": batch[:1]})
    validator = RecordValidator(spec)
    parsed = jiter.from_json(body)["records"]
    parsed_one = jiter.from_json(one)["records"]
    if validator.validate(parsed)[2] or validator.validate(parsed_one)[2]:
        print("the benchmark's records are not valid: nothing measured", file=sys.stderr)
        return 1

    print("1. API validation step (CPU, best of rounds)")
    ref = best_cpu(ROUNDS, lambda: jiter.from_json(body))
    ours = best_cpu(ROUNDS, lambda: validator.validate(parsed))
    print(f"   10k batch: validate {ours * 1000:6.1f} ms  ({10_000 / ours:,.0f} records/s); "
          f"reference, parsing its JSON: {ref * 1000:6.1f} ms")  # fmt: skip

    def singles(func):
        def run():
            for _ in range(SINGLE_REPEATS):
                func()

        return best_cpu(ROUNDS, run) / SINGLE_REPEATS

    ref = singles(lambda: jiter.from_json(one))
    ours = singles(lambda: validator.validate(parsed_one))
    print(f"   1 record:  validate {ours * 1e6:6.1f} us; reference, parsing its JSON: "
          f"{ref * 1e6:6.1f} us")  # fmt: skip

    print("2. CSV text: check and convert 100,000 rows, 10% bad cells (CPU, best of rounds)")
    rng = np.random.default_rng(0)
    text = pd.concat([frame] * (100_000 // len(frame) + 1)).iloc[:100_000].astype(str)
    text = text.reset_index(drop=True)
    bad = rng.choice(len(text), size=len(text) // 10, replace=False)
    for position, row in enumerate(bad):
        column = spec.names[position % len(spec.names)]
        text.iat[row, text.columns.get_loc(column)] = ("abc", "-5", "NA", "Male")[position % 4]
    data = text.to_csv(index=False).encode()
    raw = csvfile.read_csv(data).frame
    ref = best_cpu(3, lambda: csvfile.read_csv(io.BytesIO(data)))
    check = rules.check_frame(raw, spec)
    ours = best_cpu(3, lambda: rules.check_frame(raw, spec))
    kinds = {f.name: f.kind.value for f in spec.features}
    convert = best_cpu(3, lambda: rules.to_records(raw, kinds))
    print(f"   check_frame {ours * 1000:6.0f} ms ({len(check.problems):,} problems), "
          f"to_records {convert * 1000:6.0f} ms; reference, reading the CSV: "
          f"{ref * 1000:6.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
