"""The balancer's configuration, natively and in docker compose: haproxy accepts both, and
they apply the same rules (readiness check, no replay, forwarded headers). docker compose is
not run here (no Docker engine): its file is read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlsys.config import ROOT, load_settings
from service.config import load_service_settings
from service.fleet import haproxy_binary, render_config

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
COMPOSE_CFG = ROOT / "docker" / "haproxy.cfg"


def _native(tmp_path: Path, **env: str) -> str:
    env = {"API_WORKERS": "3", "API_BACKEND_PORT": "9100", **env}
    return render_config(
        load_settings(env), load_service_settings(env), tmp_path / "s.sock", [9100, 9101, 9102]
    )


def _rules(text: str) -> list[str]:
    """Directive lines (comments and blank lines dropped) minus what differs by design: the
    bind address, server discovery and the stats socket."""
    skip = re.compile(
        r"^(bind |server|default-server|stats socket|resolvers|nameserver|hold |timeout (resolve|retry))"
    )
    lines = [line.strip() for line in text.splitlines()]
    return [x for x in lines if x and not x.startswith("#") and not skip.match(x)]


@pytest.mark.parametrize("which", ["native", "compose"])
def test_haproxy_accepts_the_configuration(tmp_path: Path, which: str) -> None:
    path = COMPOSE_CFG
    if which == "native":
        path = tmp_path / "haproxy.cfg"
        path.write_text(_native(tmp_path) + "\n")
    check = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_native_and_compose_apply_the_same_rules(tmp_path: Path) -> None:
    native, compose = _native(tmp_path), COMPOSE_CFG.read_text()
    assert _rules(native) == _rules(compose)
    # retry-on stays conn-failure: a request that reached a process is never replayed.
    assert not [line for line in _rules(native) if line.startswith("retry-on")]
    assert re.search(r"^\s+server-template api- 1-\d+ api:8000$", compose, re.M)
    servers = re.findall(r"^\s+server (api-\d) 127\.0\.0\.1:(\d+)$", native, re.M)
    assert servers == [("api-0", "9100"), ("api-1", "9101"), ("api-2", "9102")]
    assert "default-server check inter 500ms fall 2 rise 1" in native


def test_the_health_check_host_is_one_the_service_accepts(tmp_path: Path) -> None:
    assert "hdr Host example.org" in _native(tmp_path, API_ALLOWED_HOSTS="example.org,localhost")
    compose_hosts = COMPOSE["services"]["api"]["environment"]["API_ALLOWED_HOSTS"]
    assert "hdr Host localhost" in COMPOSE_CFG.read_text() and "localhost" in compose_hosts


def test_compose_sends_every_call_through_the_balancer() -> None:
    services = COMPOSE["services"]
    api, lb = services["api"], services["api-lb"]
    assert "ports" not in api and lb["ports"] == ["127.0.0.1:${API_PORT:-8000}:8000"]
    assert re.fullmatch(r"haproxy:\d+\.\d+", lb["image"])  # the official image
    assert "./docker/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert api["command"][:3] == ["python", "-m", "service.serve"]  # drains on SIGTERM
    assert api["deploy"]["replicas"] == "${API_REPLICAS:-2}"
    for name in ("ui", "airflow-scheduler", "airflow-apiserver"):
        assert services[name]["environment"]["API_URL"] == "http://api-lb:8000", name
    assert "api-lb" in api["environment"]["API_ALLOWED_HOSTS"].split(":-", 1)[1].split(",")
    # Longer than draining plus the requests in flight, or docker kills a replica mid-request.
    assert int(api["stop_grace_period"].rstrip("s")) > 3 + 30
