"""Issue 8 #7: ``hub keys rotate --drop-old`` while processes keep writing credentials.

Before: a process that built its vault before the rotation kept encrypting new
credentials with the key the rotation dropped, and every new process then failed to
read them. Now a writer encrypts only under the key the database's marker names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hub.settings import load_settings
from hub.vault import Vault, VaultError, rotate_keys

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def vault_settings(tmp_path, monkeypatch, hub_settings):
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HUB_DATABASE_URL", os.environ["HUB_DATABASE_URL"])
    monkeypatch.delenv("HUB_SECRET_KEYS", raising=False)
    return load_settings()


def test_rotation_with_drop_old_during_writes_leaves_every_row_readable(clean_db, vault_settings):
    running = [Vault(settings=vault_settings) for _ in range(3)]  # built before the rotation
    running[0].set("luma", {"api_key": "before"})
    stop = threading.Event()
    written: dict[str, str] = {}
    errors: list[BaseException] = []

    def writer(index: int, vault: Vault) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            platform = f"p{index}-{n % 5}"
            try:
                vault.set(platform, {"token": f"t{index}-{n}"})
                written[platform] = f"t{index}-{n}"
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(i, v)) for i, v in enumerate(running)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    rotate_keys(vault_settings, drop_old=True)
    time.sleep(0.3)
    rotate_keys(vault_settings, drop_old=True)  # twice: the first new key is dropped too
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    # A new process (only the current key file) reads everything, the last writes included.
    listing = subprocess.run(
        [sys.executable, "-c",
         "import json,sys; from hub.vault import Vault; v = Vault(); "
         "print(json.dumps({p: v.get(p) for p, _, _ in v.platforms()}))"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={**os.environ, "HUB_DATA_DIR": str(vault_settings.data_dir)},
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr[-2000:]
    stored = json.loads(listing.stdout)
    assert stored["luma"] == {"api_key": "before"}
    for platform, token in written.items():
        assert stored[platform] == {"token": token}


def test_a_process_that_cannot_get_the_current_key_refuses_to_write(
    clean_db, vault_settings, monkeypatch
):
    from cryptography.fernet import Fernet

    stale = Fernet.generate_key().decode()
    Vault(settings=vault_settings).set("luma", {"api_key": "x"})  # marker: the file's key
    monkeypatch.setenv("HUB_SECRET_KEYS", stale)  # a process started with another key
    with pytest.raises(VaultError, match="current key"):
        Vault(settings=load_settings()).set("luma", {"api_key": "y"})
