"""How `make up` (ops.supervisor) starts the web UI: Streamlit from the app environment."""

from __future__ import annotations

from pathlib import Path

from mlsys.config import ROOT, Settings
from ops.supervisor import Service

APP = ROOT / "frontend" / "app.py"


def command(settings: Settings, *, python: Path | None = None) -> list[str]:
    """The Streamlit command line; the browser test starts the UI with the same one."""
    from frontend.config import load_ui_settings

    ui = load_ui_settings()
    return [
        str(python or settings.venv_python("app")),
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address=127.0.0.1",
        f"--server.port={settings.ui_port}",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
        # Users see the app, not Streamlit's developer menu and "Deploy" button.
        "--client.toolbarMode=viewer",
        # The browser refuses larger files before uploading them; the UI checks again.
        f"--server.maxUploadSize={ui.max_upload_mb}",
        # A served app does not reload on source edits; no watcher threads either.
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
    ]


SERVICE = Service(
    name="ui",
    command=command,
    url=lambda s: f"http://127.0.0.1:{s.ui_port}",
    port=lambda s: s.ui_port,
    # The UI reaches the API only through API_URL.
    env=lambda s: {"API_URL": s.api_url, "UI_PORT": str(s.ui_port)},
    ready_timeout_s=60.0,
)
