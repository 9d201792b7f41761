"""A large raw file with a known share of bad rows, for the ingestion benchmark.

    .venvs/app/bin/python -m bench.ingest_data_gen OUT.csv [ROWS] [BAD_SHARE]

Rows are drawn column by column from the data set (so they are realistic and, in practice,
all distinct), then a share of them gets exactly one bad cell each, of the row-level kinds the
row checks know, derived from the schema. Prints the expected counts as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mlsys.config import get_settings
from mlsys.features import Kind, get_feature_spec


def write_large_file(path: Path, rows: int, bad_share: float, seed: int = 7) -> dict[str, int]:
    """Write `rows` data rows to `path`; returns {"rows": ..., "bad_rows": ...} as written.

    Every bad row has one injected error, and no good row equals another (checked), so the
    expected split is exact: bad_rows go to bad_data, the others to good_data.
    """
    s, spec = get_settings(), get_feature_spec()
    source = pd.read_csv(s.dataset_path, dtype=str, keep_default_na=False)[spec.names]
    rng = np.random.default_rng(seed)
    columns = {
        name: source[name].to_numpy(dtype=object)[rng.integers(0, len(source), rows)]
        for name in spec.names
    }
    frame = pd.DataFrame(columns)
    # Draws can repeat a whole row (rarely): redraw those rows until every row is distinct.
    for _ in range(20):
        again = np.flatnonzero(frame.duplicated().to_numpy())
        if again.size == 0:
            break
        for name in spec.names:
            frame.loc[again, name] = source[name].to_numpy(dtype=object)[
                rng.integers(0, len(source), again.size)
            ]
    else:
        raise RuntimeError("could not draw distinct rows")

    bad = np.sort(rng.choice(rows, size=int(rows * bad_share), replace=False))
    categorical = [f for f in spec.features if f.kind is Kind.CATEGORICAL]
    integer = [f for f in spec.features if f.kind is Kind.INTEGER]
    bounded = [f for f in integer if f.minimum is not None]
    kinds = [
        (categorical, lambda f: "bogus-" + f.name),  # unknown_category
        (bounded, lambda f: str(int(f.minimum) - 1)),  # out_of_range
        (integer, lambda f: "twelve"),  # not_a_number
        (integer, lambda f: "33.5"),  # not_an_integer
        (categorical, lambda f: ""),  # missing_value
    ]
    for k, (features, value) in enumerate(kinds):
        chosen = bad[k :: len(kinds)]
        which = rng.integers(0, len(features), chosen.size)
        for j, feature in enumerate(features):
            frame.loc[chosen[which == j], feature.name] = value(feature)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)
    return {"rows": rows, "bad_rows": int(bad.size)}


def main() -> int:
    out = Path(sys.argv[1])
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    share = float(sys.argv[3]) if len(sys.argv) > 3 else 0.10
    print(json.dumps(write_large_file(out, rows, share)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
