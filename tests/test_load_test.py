"""benchmarks/load_test.py, scaled down: concurrent clients against real servers on 127.0.0.1, no errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.integration
def test_a_small_load_run_has_no_errors(tmp_path):
    out, md = tmp_path / "load.json", tmp_path / "RESULTS.md"
    cmd = [sys.executable, "benchmarks/load_test.py", "--clients", "4", "--requests", "40", "--warmup", "2",
           "--max-seconds", "60", "--out-json", str(out), "--results-md", str(md)]  # fmt: skip
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed: the Celery case of the load test cannot run")
        cmd.append("--skip-celery")
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    cases = [name for name in ("embedded_unbatched", "embedded", "celery") if name in results]
    assert {"embedded_unbatched", "embedded"} <= set(cases) and all(
        results[c]["errors"] == 0 and results[c]["requests"] == 40 for c in cases
    )
    assert {"date", "commit", "command"} <= set(results)
    assert "<!-- load_test:start -->" in md.read_text()
