"""scripts/gpu_check.py where there is no GPU: one line, exit 0, quickly, and nothing built.

Not marked torch: without torch the script says so too. CUDA_VISIBLE_DEVICES="" hides any GPU, so this runs
the no-GPU path on every machine; the GPU path itself is what `make gpu-check` runs where a GPU exists.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "gpu_check.py"


def test_without_a_gpu_it_says_so_in_one_line_and_builds_nothing(tmp_path: Path) -> None:
    out, work = tmp_path / "gpu_check.json", tmp_path / "work"
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), "--work", str(work)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.count("\n") == 1
    line = done.stdout.strip()
    assert line.startswith("gpu-check: skipped, ")
    assert line.endswith(("sees no CUDA GPU here", "torch is not installed (no GPU to check)"))
    assert not out.exists() and not work.exists()  # no tiny models, no cache, no report
    assert seconds < 30  # importing torch, nothing more
