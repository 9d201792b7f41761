"""Operations beside the core (`mlsys`): bringing the local system up and down.

- `ops.supervisor`: `python -m ops up|down|status|db` (`make up`, `make down`, `make status`):
  starts each component declared by its `launch.py`, with pid and log files under VAR_DIR.
- `ops.pg`: the embedded PostgreSQL server (initdb, start, stop, passwords, roles' access).

The core never imports this package; the components' `launch.py` files, the tests and the
benchmarks do.
"""
