"""The `hub` commands a person runs: Meetup's OAuth connect and dbt's connection check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub.settings import load_settings
from hub.vault import Vault
from integrations.sandbox import credentials as sc
from integrations.sandbox.common import serve_in_thread
from integrations.sandbox.meetup import create_app as meetup_app

ROOT = Path(__file__).resolve().parents[1]


def _hub(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub_cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=180,
    )


def test_integrations_connect_meetup_runs_the_oauth_code_flow(clean_db, tmp_path):
    server = serve_in_thread(meetup_app(state_path=str(tmp_path / "meetup.sqlite")))
    env = {**os.environ, "HUB_MEETUP_BASE_URL": server.url, "HUB_MEETUP_OAUTH_BASE_URL": server.url}
    try:
        not_yet = _hub("integrations", "connect", "meetup", env=env)
        assert not_yet.returncode == 1
        assert "hub integrations set meetup" in not_yet.stderr  # says what to do first
        stored = _hub(
            "integrations",
            "set",
            "meetup",
            "--stdin",  # secrets never on the command line (visible in the process list)
            env=env,
            stdin=f"client_id={sc.MEETUP_CLIENT_ID}\nclient_secret={sc.MEETUP_CLIENT_SECRET}\n"
            f"redirect_uri={sc.MEETUP_REDIRECT_URI}\n",
        )
        assert stored.returncode == 0, stored.stderr
        connected = _hub("integrations", "connect", "meetup", env=env)
        assert connected.returncode == 0, connected.stderr
        assert "meetup connected" in connected.stdout
    finally:
        server.stop()
    tokens = Vault(settings=load_settings()).get("meetup")
    assert tokens and tokens["access_token"] and tokens["refresh_token"]
    for output in (stored.stdout, connected.stdout, connected.stderr):
        assert tokens["access_token"] not in output
        assert sc.MEETUP_CLIENT_SECRET not in output


def test_dbt_debug_passes_with_the_hub_connection(hub_settings):
    result = _hub("dbt", "debug", env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-2000:]
    assert "All checks passed" in result.stdout
