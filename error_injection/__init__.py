"""Raw-data generation with synthetic errors, for the ingestion pipeline to catch.

`python -m error_injection generate` splits the data set into files in DATA_DIR/raw-data,
drops the target and injects errors from `error_injection.errors.REGISTRY` into a share of
the files, reproducibly from a seed, with one JSON manifest per file in DATA_DIR/manifests.
See docs/error_injection.md.
"""
