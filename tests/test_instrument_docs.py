"""Every Python example of docs/instrumentation.md runs (as a module, not as __main__, so the
examples that would start a server stop after building it)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "instrumentation.md"
RUN = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='docs_example')"


def test_every_example_runs(tmp_path, redis_server):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 10
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_server.url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    runs = []
    for number, code in enumerate(blocks):
        path = tmp_path / f"example_{number}.py"
        path.write_text(code)
        runs.append((code, subprocess.Popen([sys.executable, "-c", RUN, str(path)], cwd=tmp_path, env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    outputs = []
    for code, run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, f"example failed:\n{code}\n{err}"
        outputs.append(out + err)
    assert any('"request_id": "3f2a9c"' in output and '"agent": "planner"' in output for output in outputs)
    assert any("refused:" in output for output in outputs)
