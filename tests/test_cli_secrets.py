"""Issue 8 #8: `hub integrations set` never takes a secret from the command line (every
user sees a process's arguments while it runs): a prompt, --stdin or --from-file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.settings import load_settings
from hub.vault import Vault

ROOT = Path(__file__).resolve().parents[1]
SECRET = "EBLIVETOKEN-never-in-argv-77"


@pytest.fixture()
def env(tmp_path, hub_settings, monkeypatch):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))  # the key file the CLI creates
    monkeypatch.delenv("HUB_SECRET_KEYS", raising=False)
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _hub(*args: str, env: dict, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hub_cli", *args], input=stdin, text=True,
                          capture_output=True, cwd=ROOT, env=env, timeout=60)  # fmt: skip


def test_a_secret_on_the_command_line_is_refused_and_not_stored(clean_db, env):
    result = _hub("integrations", "set", "eventbrite", f"token={SECRET}", env=env)
    assert result.returncode != 0
    assert "not taken from the command line" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert Vault(settings=load_settings()).platforms() == []


def test_stdin_and_file_are_read_and_the_process_list_never_shows_the_secret(
    clean_db, env, tmp_path
):
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub_cli", "integrations", "set", "eventbrite", "--stdin"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, env=env,
    )  # fmt: skip
    time.sleep(0.5)  # running, waiting on stdin: what `ps` shows now
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
    out, err = proc.communicate(f"token={SECRET}\n", timeout=60)
    assert proc.returncode == 0, err
    assert SECRET not in cmdline and SECRET not in out + err
    secrets_file = tmp_path / "luma.env"
    secrets_file.write_text("# luma\napi_key=luma-secret-from-file\n")
    assert (
        _hub("integrations", "set", "luma", "--from-file", str(secrets_file), env=env).returncode
        == 0
    )
    vault = Vault(settings=load_settings())
    assert vault.get("eventbrite") == {"token": SECRET}
    assert vault.get("luma") == {"api_key": "luma-secret-from-file"}
