"""The `headwater` CLI against a real SQLite file: keys and app import/export."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml


def _cli(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {"HEADWATER_DATA_DIR": str(data_dir), "HEADWATER_ADMIN_KEY": "hw_cli_admin", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "headwater", *args], env=env, capture_output=True, text=True, timeout=60)


def test_keys_create_list_revoke(tmp_path):
    created = _cli(tmp_path, "keys", "create", "ci-key", "--scope", "chatbot")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split("key (shown once): ")[1].strip()
    key_id = created.stdout.split("id: ")[1].split()[0]
    listing = _cli(tmp_path, "keys", "list")
    assert "ci-key" in listing.stdout and key not in listing.stdout and key[:10] in listing.stdout
    assert _cli(tmp_path, "keys", "revoke", key_id).returncode == 0
    assert "ci-key" not in _cli(tmp_path, "keys", "list").stdout
    missing = _cli(tmp_path, "keys", "revoke", key_id)
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_apps_import_export_round_trip(tmp_path):
    source = tmp_path / "bot.yaml"
    source.write_text(yaml.safe_dump({
        "name": "Docs bot", "slug": "docs-bot", "kind": "chatbot",
        "config": {"model": "local/gemma-3-270m", "system_prompt": "Be brief.", "temperature": 0.1},
    }))
    imported = _cli(tmp_path, "apps", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "docs-bot" in imported.stdout and "version 1" in imported.stdout
    again = _cli(tmp_path, "apps", "import", str(source))
    assert "version 2" in again.stdout  # re-importing the same slug adds a version
    out = tmp_path / "export.json"
    assert _cli(tmp_path, "apps", "export", "docs-bot", "-o", str(out)).returncode == 0
    exported = json.loads(out.read_text())
    assert exported["config"]["system_prompt"] == "Be brief."
    assert exported["kind"] == "chatbot" and exported["slug"] == "docs-bot"


def test_import_refuses_bad_documents(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "kind": "chatbot", "config": {"model": "nowhere/none"}}))
    result = _cli(tmp_path, "apps", "import", str(bad))
    assert result.returncode == 1 and "unknown model" in result.stderr
    weird = tmp_path / "weird.yaml"
    weird.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    result = _cli(tmp_path, "apps", "import", str(weird))
    assert result.returncode != 0 and "pwned" not in result.stdout
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
