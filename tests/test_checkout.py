"""The checkout tools find the repository from the working directory, not from the package."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vigil_exporter.tools import checkout

ROOT = Path(__file__).resolve().parent.parent


def test_found_from_the_checkout_and_any_folder_below_it(monkeypatch):
    monkeypatch.delenv("VIGIL_CHECKOUT", raising=False)
    assert checkout.root(ROOT) == ROOT
    assert checkout.root(ROOT / "grafana" / "src") == ROOT


def test_outside_a_checkout_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.delenv("VIGIL_CHECKOUT", raising=False)
    with pytest.raises(checkout.NotACheckout, match="not inside a checkout.*VIGIL_CHECKOUT"):
        checkout.root(tmp_path)
    result = subprocess.run([sys.executable, "-m", "vigil_exporter", "bundle", "build", "--check"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not inside a checkout" in result.stderr


def test_vigil_checkout_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CHECKOUT", str(ROOT))
    assert checkout.root(tmp_path) == ROOT
    monkeypatch.setenv("VIGIL_CHECKOUT", str(tmp_path))
    with pytest.raises(checkout.NotACheckout, match="is not a checkout"):
        checkout.root()
