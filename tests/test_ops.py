"""`make up/down` mechanics on a real process: start twice is harmless, a taken port is
reported, stop ends the whole process tree."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import sys

import psutil
import pytest

from mlsys.config import load_settings
from ops import pg, supervisor


def _service(port: int) -> supervisor.Service:
    # A real long-running process with a child, like uvicorn's supervisor and its workers.
    script = (
        "import subprocess, sys, http.server;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    return supervisor.Service(
        name="dummy",
        command=lambda s: [sys.executable, "-c", script],
        url=lambda s: f"http://127.0.0.1:{port}",
        port=lambda s: port,
        ready_timeout_s=30,
    )


def test_start_twice_is_harmless_and_stop_ends_the_tree(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    service = _service(pg.free_port())
    first = supervisor.start_service(settings, service)
    assert first.startswith("dummy: http://127.0.0.1:")
    pid = supervisor.service_pid(settings, "dummy")
    tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    assert len(tree) == 2
    assert "already running" in supervisor.start_service(settings, service)
    assert supervisor.service_pid(settings, "dummy") == pid
    assert supervisor.stop_service(settings, "dummy", grace_s=10) == "dummy: stopped"
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert supervisor.stop_service(settings, "dummy") is None  # stopping twice is harmless too


def test_a_taken_port_is_reported_clearly(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit, match=f"port {port} is already taken by another program"):
            supervisor.start_service(settings, _service(port))
    assert supervisor.service_pid(settings, "dummy") is None


def test_a_pid_file_naming_another_live_process_is_neither_reported_nor_killed(tmp_path):
    """After a reboot the pid in a pid file may belong to anything: status says stopped and
    down leaves it alone."""
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        run = supervisor.run_dir(settings)
        run.mkdir(parents=True)
        # The same pid, but recorded for a process started at another tick, in another boot,
        # or running another command; or an older pid file (no ticks) from another time.
        real = supervisor.PidRecord.of(stranger.pid)
        assert real.start_ticks is not None and real.boot_id
        for record in (
            dataclasses.replace(real, start_ticks=real.start_ticks - 100),
            dataclasses.replace(real, boot_id="0" * 8 + real.boot_id[8:]),
            dataclasses.replace(real, cmdline_sha256="0" * 64),
            dataclasses.replace(
                real, create_time=real.create_time - 3600, start_ticks=None, boot_id=None
            ),
        ):
            (run / "dummy.pid").write_text(record.to_json())
            assert supervisor.service_pid(settings, "dummy") is None
            line = supervisor.stop_service(settings, "dummy", grace_s=1)
            assert line == "dummy: not running (stale pid file removed, nothing killed)"
            assert stranger.poll() is None  # still alive
        (run / "dummy.pid").write_text(str(stranger.pid))  # a bare pid (older pid files)
        assert supervisor.service_pid(settings, "dummy") is None
        supervisor.stop_service(settings, "dummy", grace_s=1)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_our_process_is_still_ours_after_the_wall_clock_is_stepped(tmp_path):
    """A clock stepped by NTP or a resumed virtual machine moves every start time in seconds
    since the epoch; `down` must still stop what `up` started (a CI run once left the whole
    system running after `make down`). Simulated by a record whose epoch start time is an hour
    off: the start tick and the boot id still name the process."""
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    service = _service(pg.free_port())
    supervisor.start_service(settings, service)
    pid_file = supervisor.run_dir(settings) / "dummy.pid"
    real = supervisor.PidRecord.from_json(pid_file.read_text())
    assert real is not None and real.start_ticks is not None
    pid_file.write_text(dataclasses.replace(real, create_time=real.create_time + 3600).to_json())
    proc = psutil.Process(real.pid)
    try:
        assert supervisor.service_pid(settings, "dummy") == real.pid
        assert supervisor.stop_service(settings, "dummy", grace_s=10) == "dummy: stopped"
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    finally:
        if proc.is_running():
            proc.kill()


def test_stop_reaches_a_descendant_that_left_the_tree(tmp_path):
    """A grandchild whose parent died is re-parented to init and leaves the pid file's tree
    (a CI run once found a Celery worker process alive after `make down`): the environment
    tag still names it, and `stop` ends it. A stranger started alike but by someone else is
    left alone."""
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    port = pg.free_port()
    orphan_file = tmp_path / "orphan.pid"
    # The service starts an intermediate process that starts a sleeper and exits at once.
    script = tmp_path / "service.py"
    script.write_text(
        "import http.server, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'import subprocess, sys; "
        'print(subprocess.Popen(["sleep", "600"]).pid)\'], '
        f"stdout=open({str(orphan_file)!r}, 'w'), check=True)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.BaseHTTPRequestHandler)"
        ".serve_forever()\n"
    )
    service = dataclasses.replace(_service(port), command=lambda s: [sys.executable, str(script)])
    stranger = subprocess.Popen(["sleep", "600"])
    supervisor.start_service(settings, service)
    orphan = psutil.Process(int(orphan_file.read_text()))
    try:
        main = psutil.Process(supervisor.service_pid(settings, "dummy"))
        assert orphan.pid not in {p.pid for p in main.children(recursive=True)}
        assert [p.pid for p in supervisor.tagged_processes(settings, "dummy")] == [
            main.pid,
            orphan.pid,
        ]
        line = supervisor.stop_service(settings, "dummy", grace_s=10)
        assert line == "dummy: stopped; 1 processes of it outside its tree stopped too"
        assert not orphan.is_running() or orphan.status() == psutil.STATUS_ZOMBIE
        assert stranger.poll() is None  # the same command, not ours: alive
        assert supervisor.tagged_processes(settings) == []
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            orphan.kill()
        stranger.kill()
        stranger.wait()


def test_status_reports_a_recycled_pid_as_stopped(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        supervisor.run_dir(settings).mkdir(parents=True)
        real = supervisor.PidRecord.of(stranger.pid)
        for service in supervisor.services():
            record = dataclasses.replace(real, start_ticks=real.start_ticks + 1)
            (supervisor.run_dir(settings) / f"{service.name}.pid").write_text(record.to_json())
        lines = supervisor.status(settings)
        assert str(stranger.pid) not in "\n".join(lines)
        for service in supervisor.services():
            # Stopped services of the other executor (Redis, Celery workers) are not listed.
            listed = f"{service.name}: stopped" in lines
            assert listed == service.enabled(settings), service.name
    finally:
        stranger.kill()
        stranger.wait()


def test_demo_files_go_only_into_a_data_folder_that_never_held_data(tmp_path, monkeypatch):
    """`make up` on an empty raw-data: demo files on a first start, never into a folder that
    held data (a new user's emptied raw-data got 20 files of demo rows mixed into theirs), and
    never with DEMO_RAW_DATA=0."""
    data = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data))  # the generator reads it from the environment
    off = load_settings({"DATA_DIR": str(data), "DEMO_RAW_DATA": "0"})
    assert supervisor.raw_data_up(off).endswith("(DEMO_RAW_DATA=0: no demo files)")
    assert not (data / "raw-data").exists() or not any((data / "raw-data").iterdir())

    (data / "good_data").mkdir(parents=True)
    (data / "good_data" / "theirs.csv").write_text("a\n1\n")
    held = load_settings({"DATA_DIR": str(data)})
    assert "demo files go only into a data folder that never held data" in (
        supervisor.raw_data_up(held)
    )
    assert not (data / "raw-data").exists() or not any((data / "raw-data").iterdir())

    (data / "good_data" / "theirs.csv").unlink()
    (data / "good_data" / ".hidden").write_text("")  # hidden files are not data
    line = supervisor.raw_data_up(held)
    assert line.startswith(f"raw-data: generated 20 demo files in {data / 'raw-data'}"), line
    assert len(list((data / "raw-data").glob("*.csv"))) == 20
    # Once generated (the manifests stay), an emptied raw-data is left empty.
    for f in (data / "raw-data").glob("*.csv"):
        f.unlink()
    assert "never held data" in supervisor.raw_data_up(held)
    assert list((data / "raw-data").glob("*.csv")) == []


def test_status_exits_3_when_a_part_is_not_running(tmp_path):
    """`make status` is testable by scripts: LSB's 3 ("not running") naming what is down."""
    env = {
        "PATH": "/usr/bin:/bin",
        "VAR_DIR": str(tmp_path / "var"),
        "DATA_DIR": str(tmp_path / "data"),
        "PGPORT_EMBEDDED": str(pg.free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ops", "status"],
        cwd=supervisor.ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == supervisor.STATUS_NOT_RUNNING, proc.stderr
    assert "embedded PostgreSQL: stopped" in proc.stdout
    assert proc.stderr.startswith("not running: embedded PostgreSQL, api, ui, tfdv-worker, airflow")


def test_setup_refuses_environments_made_by_another_checkout(tmp_path):
    """A VENV_DIR shared by two checkouts would run the other checkout's code and secrets."""
    import subprocess

    from mlsys.config import ROOT, load_settings

    venvs = tmp_path / "venvs"
    (venvs / "uv" / "bin").mkdir(parents=True)
    (venvs / "uv" / "bin" / "uv").symlink_to(load_settings({}).venv_dir / "uv" / "bin" / "uv")
    site = venvs / "app" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "mlsys_worktree.pth").write_text("/somewhere/else/mlsys\n")
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "envs.sh"), "app"],
        env={"PATH": "/usr/bin:/bin", "VENV_DIR": str(venvs)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "belongs to the checkout /somewhere/else/mlsys" in proc.stderr
    assert "own VENV_DIR" in proc.stderr
    assert not (venvs / "app" / "bin").exists()  # nothing installed into it


def test_free_ports_stay_out_of_the_range_of_outgoing_connections():
    """A server port taken from the kernel's ephemeral range can meanwhile become the local
    port of some client's connection, and the server's bind then fails (the cause of a
    fleet that could not start in CI): free ports come from below that range."""
    low, _ = pg._ephemeral_range()
    ports = [pg.free_port() for _ in range(20)] + [pg.free_port_run(3)]
    assert all(10000 <= port < low for port in ports)
    with socket.socket() as server:
        server.bind(("127.0.0.1", pg.free_port()))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            taken = client.getsockname()[1]  # a local port of an outgoing connection
            assert not pg.port_in_use("127.0.0.1", taken)  # nothing listens there ...
            assert not pg._bindable("127.0.0.1", taken)  # ... yet a server cannot bind it
            assert not pg._bindable("127.0.0.1", server.getsockname()[1])
