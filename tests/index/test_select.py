"""One selection for every command (index.select): named models and sets, each with what it `requires`,
transitively; the default set when nothing is named. Before it, warm, export and status left the required
models out, and a model warmed that way could not load offline."""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager
from lyricsub_hub.errors import UsageError
from lyricsub_hub.index import load_index
from lyricsub_hub.index.write import write_index
from tests.helpers import add, payload, run_cli

PIPE, SEG, EMB = "diarize:pipe", "diarize:seg", "diarize:emb"


@pytest.fixture
def chain(hub, tmp_path) -> Path:
    """diarize:pipe requires diarize:seg, which requires diarize:emb (transitive); whisper:other stands alone."""
    pipe = add(hub, PIPE, "test/pipe", {"config.yaml": b"pipeline: x\n"})
    seg = add(hub, SEG, "test/seg", {"pytorch_model.bin": payload(11, 20_000)})
    emb = add(hub, EMB, "test/emb", {"pytorch_model.bin": payload(12, 30_000)})
    other = add(hub, "whisper:other", "test/other", {"model.bin": payload(13, 10_000)})
    specs = [replace(pipe.spec(), requires=(SEG,)), replace(seg.spec(), requires=(EMB,)), emb.spec(), other.spec()]
    return write_index(tmp_path / "chain.yaml", specs, {"default": [PIPE], "solo": ["whisper:other"]})


def _names(specs) -> list[str]:
    return [s.name for s in specs]


def test_select_follows_requires_transitively_and_uses_the_default_set(chain) -> None:
    idx = load_index(chain)
    assert _names(idx.select([PIPE])) == [PIPE, SEG, EMB]
    assert _names(idx.select()) == [PIPE, SEG, EMB]  # nothing named: the default set, with its requires
    assert _names(idx.select([PIPE], with_requires=False)) == [PIPE]
    assert _names(idx.select([], "solo")) == ["whisper:other"]
    assert len(idx.select(default=None)) == 4


def test_select_without_a_default_set_is_a_usage_error(chain, tmp_path) -> None:
    idx = load_index(chain)
    bare = write_index(tmp_path / "bare.yaml", list(idx.models.values()), {})
    with pytest.raises(UsageError, match="no 'default' set"):
        load_index(bare).select()


def test_warm_fetches_what_a_model_requires(hub, chain, cache_dir) -> None:
    proc = run_cli("warm", PIPE, "--index", str(chain), "--endpoint", hub.endpoint, "--no-load", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert [m["name"] for m in summary["models"]] == [PIPE, SEG, EMB]
    mgr = ModelManager(chain)
    assert [mgr.check_model_availability(n) for n in (PIPE, SEG, EMB, "whisper:other")] == [True, True, True, False]


def test_status_lists_and_checks_what_a_model_requires(hub, chain, cache_dir) -> None:
    assert run_cli("warm", PIPE, "--index", str(chain), "--endpoint", hub.endpoint, "--no-load").returncode == 0
    ModelManager(chain).clear_model_cache([EMB])
    proc = run_cli("status", PIPE, "--index", str(chain), "--json")
    doc = json.loads(proc.stdout)
    assert [(m["name"], m["status"]) for m in doc["models"]] == [(PIPE, "available"), (SEG, "available"), (EMB, "missing")]
    assert proc.returncode == 1 and [e["model"] for e in doc["errors"]] == [EMB]


def test_export_bundles_what_a_model_requires(hub, chain, cache_dir, tmp_path) -> None:
    assert run_cli("warm", PIPE, "--index", str(chain), "--endpoint", hub.endpoint, "--no-load").returncode == 0
    out = tmp_path / "b.tar"
    proc = run_cli("export", PIPE, "--index", str(chain), "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert [m["name"] for m in json.loads(proc.stdout)["models"]] == [PIPE, SEG, EMB]
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert any("models--test--emb" in n for n in names) and any("models--test--seg" in n for n in names)


def test_gc_keeps_what_a_kept_set_requires(hub, chain, cache_dir, tmp_path) -> None:
    assert run_cli("warm", PIPE, "--index", str(chain), "--endpoint", hub.endpoint, "--no-load").returncode == 0
    doc = json.loads(run_cli("gc", "--dry-run", "--keep-set", "default", "--index", str(chain), "--json").stdout)
    assert doc["keep"] == sorted([PIPE, SEG, EMB])


def test_the_api_selects_the_same_way(hub, chain, cache_dir) -> None:
    mgr = ModelManager(chain, endpoint=hub.endpoint)
    assert [st.name for st in mgr.list_models([PIPE])] == [PIPE, SEG, EMB]
    assert len(mgr.list_models()) == 4  # the API's listing of no names stays "every model"
    assert [r.model for r in mgr.verify([PIPE])] == [PIPE, SEG, EMB]
