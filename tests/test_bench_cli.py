"""Bench scripts answer bad arguments with argparse's exit 2 and a message, not a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args, named", [
    (["--rounds", "0"], "--rounds: expected a whole number of at least 1, got 0"),
    (["--routes", "6", "0"], "--routes: expected a whole number of at least 1, got 0"),
    (["--rounds", "many"], "--rounds: invalid positive value: 'many'"),
])
def test_per_request_bench_refuses_bad_counts(args, named):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "middleware_per_request.py"), *args],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert named in run.stderr
    assert "Traceback" not in run.stderr
