#!/usr/bin/env bash
# Create or update the three Python environments from their lock files.
# Does nothing for an environment whose lock file has not changed since it was installed.
#   scripts/envs.sh [app|airflow|tfdv ...]      (default: all three)
#   scripts/envs.sh --lock [app|airflow|tfdv ...] re-resolve requirements/*.in into *.txt, with hashes
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The default of mlsys.config's Settings.venv_dir: this script creates what Python reads later.
VENV_DIR="${VENV_DIR:-$ROOT/.venvs}"
PYTHON="${PYTHON:-python3.11}"

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=uv; return; fi
  if [ -x "$VENV_DIR/uv/bin/uv" ]; then UV="$VENV_DIR/uv/bin/uv"; return; fi
  echo "envs: uv not found, installing it into $VENV_DIR/uv" >&2
  "$PYTHON" -m venv "$VENV_DIR/uv"
  "$VENV_DIR/uv/bin/pip" install -q uv
  UV="$VENV_DIR/uv/bin/uv"
}

# Lock files pin every package with the sha256 of each of its files; installs refuse any file
# whose hash is not listed (a replaced or tampered upload), and any package that is not pinned.
# uv keeps the versions already pinned in the output file: re-locking only adds what changed.
lock() {
  local envs=("$@"); [ ${#envs[@]} -gt 0 ] || envs=(app airflow tfdv)
  for env in "${envs[@]}"; do
    (cd "$ROOT" && "$UV" pip compile --python "$PYTHON" --quiet --generate-hashes \
      --custom-compile-command "make lock" "requirements/$env.in" -o "requirements/$env.txt")
  done
}

sync_env() {
  local env="$1" lockfile="$ROOT/requirements/$1.txt" venv="$VENV_DIR/$1"
  local stamp="$venv/.lock.sha256" want
  want="$(sha256sum "$lockfile" | cut -d' ' -f1)"
  # An environment imports our packages from the one checkout it was made for (its .pth):
  # shared with another checkout, it would run that checkout's code with its settings.
  local pth owner
  for pth in "$venv"/lib/python*/site-packages/mlsys_worktree.pth; do
    [ -f "$pth" ] || continue
    owner="$(cat "$pth")"
    if [ "$owner" != "$ROOT" ]; then
      echo "envs: $venv belongs to the checkout $owner, not to $ROOT: give each checkout its own VENV_DIR (uv's cache makes a new one quick)" >&2
      exit 2
    fi
  done
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
    return 0
  fi
  echo "envs: installing '$env' from requirements/$env.txt into $venv" >&2
  [ -x "$venv/bin/python" ] || "$UV" venv --quiet --python "$PYTHON" "$venv"
  "$UV" pip sync --quiet --require-hashes --python "$venv/bin/python" "$lockfile"
  # Our own packages are imported from the work tree, in every environment.
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$ROOT" > "$site/mlsys_worktree.pth"
  echo "$want" > "$stamp"
}

ensure_uv
if [ "${1:-}" = "--lock" ]; then shift; lock "$@"; exit 0; fi
envs=("$@"); [ ${#envs[@]} -gt 0 ] || envs=(app airflow tfdv)
for env in "${envs[@]}"; do sync_env "$env"; done
