"""promtool's unit tests of the bundle (prometheus/tests/*_test.yml), a test per file.

In a file of their own: they replay hours of series and are the slowest part of the bundle's
tests, so the parallel runner (one file per worker) can run them beside the rest.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*_test.yml"))


def test_there_are_unit_tests():
    assert UNIT_TESTS, "no prometheus/tests/*_test.yml"


@pytest.mark.timeout(600)  # slow on a loaded machine
@pytest.mark.parametrize("path", UNIT_TESTS, ids=lambda p: p.stem)
def test_promtool_unit_tests(path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run the test command from README.md"
    result = subprocess.run([promtool, "test", "rules", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
