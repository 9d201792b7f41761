"""Property-based fuzzing of the real uvicorn process, driven by its own OpenAPI document.

schemathesis turns each operation of `/openapi.json` into Hypothesis strategies: positive
cases (valid by the document: the request body schema is generated from the feature spec, so
these are real records, most of them predicted and stored) and negative ones (each violating
the document somewhere: wrong types, missing fields, out-of-range numbers, odd strings). Every
answer must be below 500, and a refused request must store nothing (rows are counted before
and after each call; an accepted one must store exactly what it says it stored).

Reproducible: Hypothesis runs derandomized (the same cases on every run). FUZZ_CASES sets the
total number of cases (default 1,200), split over the operations by `SHARE`.
Request headers come from `auth_headers()` only, so that credentials are added in one place.
"""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from mlsys.api_auth import Role
from tests.conftest import auth_headers as conftest_auth_headers
from tests.service.conftest import Api

TOTAL_CASES = int(os.environ.get("FUZZ_CASES", 1200))
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# Share of the cases per operation (by label) and generation mode; /predict is where the
# input is. Operations that take no input have one possible request, and nothing to make
# invalid (Hypothesis calls a negative strategy for them unsatisfiable).
SHARE = {
    ("POST /predict", POSITIVE): 0.28,
    ("POST /predict", NEGATIVE): 0.28,
    ("GET /past-predictions", POSITIVE): 0.13,
    ("GET /past-predictions", NEGATIVE): 0.13,
    ("GET /reports/{name}", POSITIVE): 0.08,
    ("GET /reports/", POSITIVE): 0.03,  # the index: filters as query parameters
    ("GET /reports/", NEGATIVE): 0.03,
    ("GET /schema-proposals", POSITIVE): 0.02,  # status and limit as query parameters
    ("GET /schema-proposals", NEGATIVE): 0.02,
    ("GET /health", POSITIVE): 0,
    ("GET /livez", POSITIVE): 0,
    ("GET /readyz", POSITIVE): 0,
    ("GET /model-info", POSITIVE): 0,
}


def auth_headers() -> dict[str, str]:
    """The headers every fuzzed request carries: the UI's credentials (webapp predictions and
    past predictions; a `scheduled` body is then a 403, which the fuzzer must also get right)."""
    return conftest_auth_headers(Role.WEBAPP)


@pytest.fixture(scope="module")
def schema(api: Api):
    doc = httpx.get(f"{api.url}/openapi.json", headers=auth_headers(), timeout=30).json()
    return schemathesis.openapi.from_dict(doc)


def operations(schema) -> dict:
    return {op.label: op for op in (r.ok() for r in schema.get_all_operations())}


def test_every_operation_is_fuzzed(schema):
    fuzzed = {label for label, _ in SHARE}
    assert set(operations(schema)) == fuzzed, "a new route needs its share of fuzz cases"


@pytest.mark.parametrize(("label", "mode"), list(SHARE), ids=[f"{o} {m.value}" for o, m in SHARE])
def test_fuzzed_requests_never_get_a_5xx_and_refused_ones_store_nothing(
    api: Api, schema, label, mode, fuzz_tally
):
    operation = operations(schema)[label]
    examples = max(1, round(TOTAL_CASES * SHARE[label, mode]))
    tally: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        before = api.count()
        answer = case.call(base_url=api.url, session=session, headers=auth_headers(), timeout=30)
        stored = api.count() - before
        tally[answer.status_code] += 1
        if answer.status_code >= 500:
            failures.append(
                f"{answer.status_code} for {case.as_curl_command()}: {answer.text[:300]}"
            )
        elif answer.status_code >= 300 and stored:
            failures.append(f"{answer.status_code} stored {stored} rows: {case.as_curl_command()}")
        elif label == "POST /predict" and answer.status_code == 200:
            if stored != answer.json()["stored"]:
                failures.append(f"200 says {answer.json()['stored']}, stored {stored}")
        elif label != "POST /predict" and stored:
            failures.append(f"{label} stored {stored} rows")

    run()
    fuzz_tally[(label, mode.value)] = tally
    assert not failures, "\n".join(failures[:10])
    # Hypothesis stops early only when it has tried every distinct case.
    assert sum(tally.values()) >= (examples if examples > 10 else 1), tally


@pytest.fixture(scope="module")
def fuzz_tally() -> dict:
    return {}


def test_the_fuzzer_ran_the_cases_asked_for(fuzz_tally):
    """Runs after the fuzzing above (file order): the total, and what was answered."""
    if len(fuzz_tally) < len(SHARE):
        pytest.skip("only part of the fuzzing ran (-k)")
    total = sum(sum(c.values()) for c in fuzz_tally.values())
    lines = [
        f"  {label} {mode}: {dict(sorted(c.items()))}" for (label, mode), c in fuzz_tally.items()
    ]
    print(f"\nfuzz cases run: {total}\n" + "\n".join(lines))
    assert total >= 0.9 * TOTAL_CASES
