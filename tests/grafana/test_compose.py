"""docker-compose.yml: valid by the Compose specification (dclint), and wired as intended.

No Docker engine runs here (and the docker client has no `compose`), so the file is checked by
a validator made for it and by reading its structure; docs/grafana.md lists what only a real
`docker compose up` can show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlsys.config import ROOT
from tests.grafana.grafana_sql import PROVISIONING_DIR, load_yaml_dir

COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_TEXT = COMPOSE_FILE.read_text(encoding="utf-8")
COMPOSE = yaml.safe_load(COMPOSE_TEXT)  # resolves the YAML anchors and `<<` merges
SERVICES = COMPOSE["services"]
DCLINT = "dclint@3.1.0"  # pinned: the rules and the bundled Compose schema do not move under us
# Style rules we do not follow on purpose: services are listed in start-up order, keys for
# reading, not alphabetically.
STYLE_RULES = ["service-keys-order", "services-alphabetical-order", "top-level-properties-order"]
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "PG_OWNER_PASSWORD",
    "PG_SERVICE_PASSWORD",
    "PG_PIPELINES_PASSWORD",
    "PG_AIRFLOW_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "GRAFANA_DB_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "TEAMS_WEBHOOK_URL",
}
AIRFLOW_SERVICES = (
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-apiserver",
    "airflow-triggerer",
)


def _dclint(path: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    if shutil.which("npx") is None or shutil.which("node") is None:
        pytest.skip("npm/node are not installed: dclint (an npm package) cannot run")
    report = tmp_path / "dclint.json"
    args = ["npx", "--yes", DCLINT, str(path), "--formatter", "json", "--output-file", str(report)]
    args += ["--disable-rule", *STYLE_RULES]
    # Offline from npm's cache when it holds the pinned version; else one fetch of the tool.
    for offline in ("true", "false"):
        env = os.environ | {"npm_config_offline": offline, "npm_config_update_notifier": "false"}
        done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        if report.exists():
            break
    assert report.exists(), f"dclint did not run: {done.stderr[-2000:]}"
    messages = [m for f in json.loads(report.read_text()) for m in f.get("messages", [])]
    return done.returncode, messages


def test_compose_file_is_valid_by_the_compose_specification(tmp_path):
    code, messages = _dclint(COMPOSE_FILE, tmp_path)
    assert messages == [] and code == 0


def test_dclint_does_report_a_broken_file(tmp_path):
    """The validator is not a rubber stamp: an unknown key fails the same check."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        COMPOSE_TEXT.replace("    restart: unless-stopped\n", "    restart_policy: always\n", 1)
    )
    code, messages = _dclint(broken, tmp_path)
    assert code != 0
    assert any("additional properties" in m["message"] for m in messages), messages


def _one_shot(name: str) -> bool:
    return SERVICES[name].get("restart") == "no"


def test_long_running_services_are_health_checked_and_started_in_order():
    for name, service in SERVICES.items():
        if not _one_shot(name):
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for needed, how in service.get("depends_on", {}).items():
            assert needed in SERVICES, f"{name} depends on unknown {needed}"
            expected = "service_completed_successfully" if _one_shot(needed) else "service_healthy"
            assert how["condition"] == expected, f"{name} -> {needed}"
    # The order itself: data before migrations before the API before the UI and the DAGs.
    assert "postgres" in SERVICES["db-migrate"]["depends_on"]
    assert {"db-migrate", "model-init"} <= set(SERVICES["api"]["depends_on"])
    assert (
        "api" in SERVICES["ui"]["depends_on"]
        and "api" in SERVICES["airflow-scheduler"]["depends_on"]
    )
    for name in AIRFLOW_SERVICES:
        assert "airflow-init" in SERVICES[name]["depends_on"]
    assert "postgres" in SERVICES["grafana"]["depends_on"]


def test_no_cycle_in_the_dependencies():
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        assert state.get(name) != "visiting", f"dependency cycle through {name}"
        if state.get(name) == "done":
            return
        state[name] = "visiting"
        for needed in SERVICES[name].get("depends_on", {}):
            visit(needed)
        state[name] = "done"

    for name in SERVICES:
        visit(name)


def test_secrets_are_required_and_never_written():
    for name in REQUIRED_SECRETS:
        assert re.search(r"\$\{" + name + r":\?[^}]+\}", COMPOSE_TEXT), f"{name} is not required"
    for service_name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|WEBHOOK|FERNET", key) and not key.endswith("_FILE"):
                assert "${" in str(value), f"{service_name}: {key} is written in the file"
    assert not re.search(r"https://[^\s]*(webhook|logic\.azure|office)", COMPOSE_TEXT)


def test_airflow_services_share_the_common_block():
    common = COMPOSE["x-airflow-common"]
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        service = SERVICES[name]
        assert service["image"] == common["image"] and service["build"] == common["build"]
        # airflow-init alone also gets the admin password, which it writes (0600) for the others.
        extra = {"AIRFLOW_ADMIN_PASSWORD"} if name == "airflow-init" else set()
        assert set(service["environment"]) - set(common["environment"]) == extra, name
        assert {k: service["environment"][k] for k in common["environment"]} == common[
            "environment"
        ], name
        assert service["volumes"] == common["volumes"]
    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["TFDV_PYTHON"] == "/opt/tfdv-venv/bin/python"
    assert {"scheduler", "dag-processor", "api-server", "triggerer"} <= {
        str(SERVICES[n]["command"]).split()[-1]
        if isinstance(SERVICES[n]["command"], str)
        else SERVICES[n]["command"][-1].split()[-1]
        for n in AIRFLOW_SERVICES
    }


def _pin(requirements: str, package: str) -> str:
    text = (ROOT / "requirements" / requirements).read_text(encoding="utf-8")
    return re.search(rf"^{re.escape(package)}==([\w.]+)", text, re.MULTILINE).group(1)


def test_images_are_official_and_match_the_locked_versions():
    airflow_file = (ROOT / "docker" / "airflow.Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"ARG AIRFLOW_IMAGE=apache/airflow:([\d.]+)-python3\.11", airflow_file)
    assert base and base.group(1) == _pin("airflow.in", "apache-airflow")
    assert "requirements/tfdv.txt" in airflow_file and "/opt/tfdv-venv" in airflow_file
    assert COMPOSE["x-airflow-common"]["image"].endswith(base.group(1))
    assert re.fullmatch(r"postgres:\d+", SERVICES["postgres"]["image"])
    grafana = re.fullmatch(r"grafana/grafana:(\d+)\.\d+\.\d+", SERVICES["grafana"]["image"])
    assert grafana and int(grafana.group(1)) >= 11, "Teams Workflows URLs need Grafana >= 11"
    app_file = (ROOT / "docker" / "app.Dockerfile").read_text(encoding="utf-8")
    assert "requirements/app.txt" in app_file and "FROM python:3.11" in app_file
    for name in ("api", "ui", "db-migrate", "model-init"):
        assert SERVICES[name]["build"]["dockerfile"] == "docker/app.Dockerfile"


def _variables_the_code_reads() -> set[str]:
    pattern = re.compile(r"""(?:\.get\(|\(\s*env\s*,\s*)["']([A-Z][A-Z0-9_]+)["']""")
    found = set()
    for folder in ("mlsys", "service", "frontend", "pipelines", "training"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text(encoding="utf-8")))
    # Secrets are read by name through mlsys.credentials.resolve_secret, their names kept in
    # one place each.
    from mlsys.api_auth import TOKEN_NAMES
    from mlsys.config import DB_ROLES
    from mlsys.report_links import KEY_NAME
    from pipelines.airflow_env import ADMIN_SECRET

    return (
        found
        | {secret for _, secret in DB_ROLES.values()}
        | {ADMIN_SECRET}
        | set(TOKEN_NAMES.values())
        | {KEY_NAME}
    )


def _mount(volume: str) -> tuple[str, str]:
    """(container path, source) of a short-syntax volume whose source may hold `${A:-b}`."""
    match = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::ro|:rw)?", volume)
    assert match, volume
    return match.group(2), match.group(1)


def _references(text: str) -> set[str]:
    """Variables a file interpolates: `${NAME}`, `${NAME:-x}`, `${NAME:?x}`; not `$${...}`
    (an escaped dollar) nor what comments mention."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)[:}]", "\n".join(lines)))


def test_our_services_get_the_variables_of_the_native_set_up():
    read = _variables_the_code_reads()
    for name in ("api", "ui", "db-migrate", "model-init", *AIRFLOW_SERVICES):
        env = SERVICES[name]["environment"]
        ours = {k for k in env if not k.startswith("AIRFLOW__")}
        assert ours <= read, f"{name} sets variables no code reads: {sorted(ours - read)}"
        assert env["DATA_DIR"] == "/data"
    for name in ("api", *AIRFLOW_SERVICES):
        mounts = dict(_mount(v) for v in SERVICES[name]["volumes"])
        assert mounts.get("/data") == "${HOST_DATA_DIR:-./data}", name  # one folder for all


def test_grafana_gets_every_variable_its_provisioning_reads():
    referenced = set()
    for folder in ("datasources", "alerting", "dashboards"):
        for path in (PROVISIONING_DIR / folder).glob("*.yaml"):
            referenced |= _references(path.read_text(encoding="utf-8"))
    grafana = SERVICES["grafana"]
    assert referenced and referenced <= set(grafana["environment"]), referenced - set(
        grafana["environment"]
    )
    assert "./grafana-provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    (dashboards,) = load_yaml_dir("dashboards").values()
    assert dashboards["providers"][0]["options"]["path"].startswith("/etc/grafana/provisioning/")


def test_published_ports_default_to_the_native_ones(settings):
    from mlsys.config import load_settings

    defaults = load_settings({})
    expected = {
        "api-lb": defaults.api_port,  # the balancer; the api replicas publish nothing
        "ui": defaults.ui_port,
        "airflow-apiserver": defaults.airflow_port,
    }
    for name, port in expected.items():
        (published,) = SERVICES[name]["ports"]
        assert re.fullmatch(rf"127\.0\.0\.1:\$\{{[A-Z_]+:-{port}\}}:{port}", published), published


def test_every_variable_the_file_reads_is_documented():
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    used = _references(COMPOSE_TEXT)
    missing = used - documented - _variables_the_code_reads()
    assert not missing, f"add to .env.example: {sorted(missing)}"


@pytest.mark.parametrize("dockerfile", ["app.Dockerfile", "airflow.Dockerfile"])
def test_images_copy_only_what_exists_and_is_sent(dockerfile):
    """Each COPY source exists and passes the image's .dockerignore (which drops .venvs)."""
    text = (ROOT / "docker" / dockerfile).read_text(encoding="utf-8")
    ignore = (ROOT / "docker" / f"{dockerfile}.dockerignore").read_text(encoding="utf-8")
    allowed = [line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")]
    assert "*" in ignore.splitlines(), "the ignore file must start from nothing"
    sources = [
        part
        for line in text.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
        if not part.startswith("--")
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert any(source == a or source.startswith(a + "/") for a in allowed), source


def test_each_component_connects_with_its_own_role():
    """As natively (mlsys.config.DB_ROLES): the superuser's password only reaches postgres and
    db-migrate; Airflow's metadata is reached as its own role; the UI gets no database."""
    from mlsys.config import DB_ROLES

    def role(url: str) -> str:
        return url.split("://", 1)[1].split(":", 1)[0]

    expected = {
        "api": "service",
        "db-migrate": "owner",
        **dict.fromkeys(AIRFLOW_SERVICES, "pipelines"),
    }
    for name, component in expected.items():
        env = SERVICES[name]["environment"]
        assert role(env["DATABASE_URL"]) == DB_ROLES[component][0], name
    for name in AIRFLOW_SERVICES:
        env = SERVICES[name]["environment"]
        assert role(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) == DB_ROLES["airflow"][0]
        assert (
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "${AIRFLOW_DEV_ALL_ADMINS:-0}"
        )
    for name, service in SERVICES.items():
        text = json.dumps(service.get("environment") or {})
        if name not in ("postgres", "db-migrate"):
            assert "POSTGRES_PASSWORD" not in text, name
    assert "DATABASE_URL" not in SERVICES["ui"]["environment"]
    assert SERVICES["db-migrate"]["environment"]["DATABASE_ADMIN_URL"].startswith(
        "postgresql://postgres:"
    )


# --- the CeleryExecutor override (docker-compose.celery.yml; docs/scaling.md) --------------
CELERY_FILE = ROOT / "docker-compose.celery.yml"
CELERY_TEXT = CELERY_FILE.read_text(encoding="utf-8")
CELERY = yaml.safe_load(CELERY_TEXT)
CELERY_SERVICES = CELERY["services"]
WORKERS = ("airflow-worker", "airflow-worker-tfdv")


def test_celery_override_is_valid_by_the_compose_specification(tmp_path):
    code, messages = _dclint(CELERY_FILE, tmp_path)
    assert messages == [] and code == 0


def test_celery_override_sets_the_native_executor_settings():
    """Every Airflow container gets what `executor_environment` in pipelines/airflow_env.py
    gives the native processes for celery, with the same values where they are not secrets."""
    from mlsys.config import load_settings
    from pipelines.airflow_env import executor_environment
    from pipelines.executor import load_executor_settings

    native = executor_environment(
        load_settings({}),
        load_executor_settings({"AIRFLOW_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://x"}),
    )
    env = CELERY["x-celery-env"]
    assert set(native) <= set(env), set(native) - set(env)
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    for key in set(native) - {"AIRFLOW__CELERY__BROKER_URL"}:
        value = str(env[key])
        default = re.fullmatch(r"\$\{[A-Z_]+:-([^}]*)\}", value)
        assert (default.group(1) if default else value) == native[key], key
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://mlsys_airflow:")
    for name in (*AIRFLOW_SERVICES, "airflow-init", *WORKERS):
        assert CELERY_SERVICES[name]["environment"] == env, name
        assert name in SERVICES or name in WORKERS
    assert re.search(r"\$\{REDIS_PASSWORD:\?[^}]+\}", CELERY_TEXT)


def test_celery_workers_serve_their_queues_and_scale():
    default, tfdv = (CELERY_SERVICES[n] for n in WORKERS)
    assert default["command"] == "celery worker --queues default --skip-serve-logs"
    tfdv_command = " ".join(tfdv["command"])
    assert '--queues "$${TFDV_QUEUE}"' in tfdv_command and "tfdv_worker" in tfdv_command
    for worker in (default, tfdv):
        # The image, settings and volumes of the other Airflow containers; nothing that two
        # replicas would fight over (a fixed name, a published port).
        assert worker["extends"] == {
            "file": "docker-compose.yml",
            "service": "airflow-dag-processor",
        }
        assert "container_name" not in worker and "ports" not in worker
        assert worker["healthcheck"]["test"] and worker["restart"] == "unless-stopped"
        for needed in ("redis", "postgres", "airflow-init"):
            assert needed in worker["depends_on"]
    redis = CELERY_SERVICES["redis"]
    assert re.fullmatch(r"redis:\d+(\.\d+)?", redis["image"]) and "ports" not in redis
    assert "--requirepass" in " ".join(redis["command"])
    # Tasks leave the scheduler's container: no warm TFDV worker there any more.
    assert CELERY_SERVICES["airflow-scheduler"]["command"] == "scheduler"


def test_every_variable_the_override_reads_is_documented():
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    missing = _references(CELERY_TEXT) - documented - _variables_the_code_reads()
    assert not missing, f"add to .env.example: {sorted(missing)}"
