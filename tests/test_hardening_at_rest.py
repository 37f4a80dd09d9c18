"""Secrets at rest are written 0600 and the docs say one thing about them; a database the
exporter watches is not written to (issue 18, "Secrets at rest", "The user's database is
theirs"). Compose's secrets (files, never environment or flags) are checked in test_compose.py."""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_render_config_writes_the_rendered_file_0600(tmp_path, vigil_cli, monkeypatch):
    output = tmp_path / "alertmanager.yml"
    output.write_text("old")
    output.chmod(0o644)
    monkeypatch.setenv("VIGIL_AM_PAGER_URL", "https://events.example.com/v1/KEY")
    umask = os.umask(0o022)
    try:
        result = vigil_cli("alerts", "render-config", ROOT / "alertmanager/alertmanager.yml",
                           "--output", output)
    finally:
        os.umask(umask)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert "events.example.com/v1/KEY" in output.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["alertmanager.yml"]  # no temporary left


def test_the_docs_give_one_rule_for_secret_files():
    texts = {path: path.read_text() for path in [*(ROOT / "docs").glob("*.md"), ROOT / "README.md",
                                                  ROOT / ".env.example",
                                                  ROOT / "deploy/secrets.example/README.md"]}
    for path, text in texts.items():
        assert "0444" not in text, f"{path}: secret files are 0400, owned by their reader"
    assert "0400" in texts[ROOT / "docs/security.md"]


# ------------------------------------------------------------------ the user's database

def _user_database(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO orders (total) VALUES (9.5)")


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                           "ORDER BY name")]


@pytest.mark.parametrize("default_queries", [True, False])
def test_a_watched_sqlite_file_gets_no_tables(tmp_path, vigil_cli, default_queries):
    database = tmp_path / "shop.db"
    _user_database(database)
    config = tmp_path / "vigil.yml"
    config.write_text(f"collectors:\n  system: {{enabled: false}}\n  database:\n    databases:\n"
                      f"      main: {{url: 'sqlite:///{database}'}}\n"
                      f"  business:\n    default_queries: {str(default_queries).lower()}\n"
                      "    queries:\n      - {name: shop_orders, help: Orders., "
                      "sql: 'SELECT count(*) AS value FROM orders'}\n")
    result = vigil_cli("metrics", "--config", config)
    assert "shop_orders 1.0" in result.stdout, result.stderr
    assert _tables(database) == ["orders"]


def test_the_embedded_default_still_gets_its_schema(tmp_path, vigil_cli, monkeypatch):
    for name in [n for n in os.environ if n.startswith("VIGIL_")]:
        monkeypatch.delenv(name)
    result = vigil_cli("metrics")
    assert result.returncode == 0, result.stderr
    assert "tenants" in _tables(tmp_path / "vigil.db")
