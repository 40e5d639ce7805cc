"""The whole promise, with tiny but real models: warm from the test Hub, verify, load and run on CPU,
then the same offline with every non-loopback connection refused and counted (zero allowed).
Also: the libraries' own loaders (demucs, faster-whisper, transformers) find the warmed models offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lyricsub_hub.testing.catalog import TINY, TOKEN, make_tiny, publish_index
from tests.helpers import ROOT, run_cli

pytestmark = [pytest.mark.torch, pytest.mark.slow]

REPOS = list(TINY)  # index names; the repos carry the names the libraries know (see lyricsub_hub.testing.catalog)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny_index(hub, tiny_dir, tmp_path) -> Path:
    return publish_index(hub, tiny_dir, tmp_path / "tiny.yaml", set_name="all")


OFFLINE_SCRIPT = textwrap.dedent("""
    import json, sys
    from lyricsub_hub import go_offline
    go_offline()                      # before huggingface_hub, transformers or pyannote are imported
    from lyricsub_hub.testing.netguard import no_network
    from lyricsub_hub import ModelManager
    out = {}
    with no_network(loopback=False) as guard:
        mgr = ModelManager(sys.argv[1])
        for name in sys.argv[2:]:
            rep = mgr.smoke_test(name, device="cpu")
            out[name] = {"device": rep.device, "load": rep.load_seconds, "run": rep.run_seconds, "summary": rep.summary}
        # the libraries' own loaders, by the names they know, from refs/main -> pinned commit
        from demucs.pretrained import get_model
        bag = get_model("htdemucs")
        out["upstream_demucs"] = type(bag).__name__
        from faster_whisper import WhisperModel
        out["upstream_faster_whisper"] = type(WhisperModel("large-v3", device="cpu", compute_type="int8")).__name__
        from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor
        Wav2Vec2Processor.from_pretrained("facebook/wav2vec2-base-960h")
        out["upstream_transformers"] = type(Wav2Vec2ForCTC.from_pretrained("facebook/wav2vec2-base-960h")).__name__
    out["attempts"] = [list(map(str, a)) for a in guard.attempts]
    print(json.dumps(out))
""")


def test_warm_verify_load_then_offline_with_zero_connection_attempts(hub, tiny_index, isolated_home, tmp_path) -> None:
    env = {"HF_TOKEN": TOKEN}
    warm = run_cli("warm", "--set", "all", "--index", str(tiny_index), "--endpoint", hub.endpoint, "--device", "cpu",
                   env=env, timeout=600)
    assert warm.returncode == 0, warm.stderr
    for name in REPOS:
        assert f"{name}" in warm.stdout and "loaded on cpu" in warm.stdout
    verify = run_cli("verify", "--deep", "--index", str(tiny_index))
    assert verify.returncode == 0 and verify.stdout.count(" ok ") >= 10
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE_SCRIPT)
    hub.clear_log()
    proc = subprocess.run([sys.executable, str(script), str(tiny_index), *REPOS], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env={**os.environ, "HF_ENDPOINT": hub.endpoint, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []  # not one connection attempt, loopback included
    assert hub.requests == []
    for name in REPOS:
        assert result[name]["device"] == "cpu" and result[name]["load"] > 0 and result[name]["run"] > 0
    assert result["upstream_demucs"] == "BagOfModels"
    assert result["upstream_faster_whisper"] == "WhisperModel"
    assert result["upstream_transformers"] == "Wav2Vec2ForCTC"


def test_cuda_without_a_gpu_is_one_clear_error(hub, tiny_index) -> None:
    assert run_cli("warm", "demucs:htdemucs", "--no-load", "--index", str(tiny_index), "--endpoint", hub.endpoint).returncode == 0
    proc = run_cli("load", "demucs:htdemucs", "--device", "cuda", "--index", str(tiny_index),
                   env={"CUDA_VISIBLE_DEVICES": ""})  # hides any GPU: runs on every machine
    assert proc.returncode == 5 and "CUDA" in proc.stderr and "--device cpu" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.cuda
def test_every_family_loads_and_runs_on_cuda(hub, tiny_index) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here")
    assert run_cli("warm", "--set", "all", "--no-load", "--index", str(tiny_index), "--endpoint", hub.endpoint,
                   env={"HF_TOKEN": TOKEN}, timeout=600).returncode == 0
    proc = run_cli("load", *REPOS, "--device", "cuda", "--json", "--index", str(tiny_index), timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [m["device"] for m in doc["models"]] == ["cuda:0"] * len(REPOS)  # where the weights are, not what was asked
