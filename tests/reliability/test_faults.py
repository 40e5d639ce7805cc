"""Every fault the Hub can throw at a download, through the real command: each one is either survived (the model
verifies deep) or ends in one clear error line, exit 3, no traceback, and nothing reported available.

Each case is its own test with its own repo, index and process. They are started together (the persistent ones
spend most of their time in the retry back-off: 0.5 + 1 + 2 + 4 s), and each test waits for its own run and
checks it, so a failure names the case it belongs to.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lyricsub_hub import ModelManager
from lyricsub_hub.testing.hub import Fault, TestHub

from .helpers import (
    Exchange,
    Proxy,
    add,
    assert_clean_failure,
    blobs_dir,
    error_lines,
    held_bytes,
    payload,
    run_cli,
    sha256,
    snapshot_is_true,
    warm_args,
    write_index,
    write_results,
)

pytestmark = pytest.mark.reliability

SMALL_SIZE = 1_200_000  # below the split size: one stream, several 256 KiB reads
SEGMENTED_SIZE = 24 << 20  # above it: ranges on four connections
TOKEN = "hf_RelFaultsToken0123456789abcdefXYZ"
MANY = 50  # beyond the retry budget (5 tries per file)


@dataclass(frozen=True)
class Case:
    id: str
    faults: tuple[dict, ...] = ()  # Fault kwargs plus target: "big" | "small"
    expect: str = "recover"  # or "fail"
    words: tuple[str, ...] = ()
    lie: int = 0  # the answer's X-Linked-Size minus the real size (through a proxy)
    pin_size: bool = True
    segmented: bool = False  # the big file is large enough to come down in ranges
    json: bool = False
    env: dict = field(default_factory=dict)
    codes: tuple[int, ...] = (3,)


def F(kind: str, target: str = "big", method: str | None = "GET", times: int = 1, **kw) -> dict:
    return {"kind": kind, "target": target, "method": method, "times": times, **kw}


CASES = [
    Case("500-get", (F("status", status=500, times=2),)),
    Case("500-small-get", (F("status", "small", status=500),)),
    Case("503-head", (F("status", status=503, method="HEAD", times=2),), segmented=True),
    Case("429-retry-after", (F("status", status=429, retry_after=1),), json=True),
    Case("429-head", (F("status", status=429, retry_after=0, method="HEAD"),), segmented=True),
    Case("drop-mid-body", (F("drop", after_bytes=600_000),)),
    Case("truncate-mid-body", (F("truncate", after_bytes=560_000),)),
    Case("drop-before-body", (F("drop", after_bytes=0, times=2),)),
    Case("flip-once", (F("flip", after_bytes=200_000),)),
    Case("flip-small-once", (F("flip", "small", after_bytes=1),)),
    Case("slow-body", (F("slow", bytes_per_second=100_000),)),
    Case("redirect", (F("redirect"), F("redirect", "small")), env={"HF_TOKEN": TOKEN}),
    Case("segment-drop", (F("drop", after_bytes=2_000_000),), segmented=True),
    Case("segment-truncate", (F("truncate", after_bytes=1_500_000),), segmented=True),
    Case("segment-flip", (F("flip", after_bytes=3_000_000),), segmented=True),
    Case("500-persistent", (F("status", status=500, times=MANY),), "fail", ("HTTP 500", "after 5 tries")),
    Case("503-head-persistent", (F("status", status=503, method="HEAD", times=MANY),), "fail", ("HTTP 503",),
         segmented=True),
    Case("429-persistent", (F("status", status=429, retry_after=0, times=MANY),), "fail", ("HTTP 429",)),
    Case("500-small-persistent", (F("status", "small", status=500, times=MANY),), "fail", ("HTTP 500",)),
    Case("drop-persistent", (F("drop", after_bytes=0, times=MANY),), "fail", ("breaking off",)),
    Case("truncate-persistent", (F("truncate", after_bytes=0, times=MANY),), "fail", ("breaking off",)),
    Case("flip-persistent", (F("flip", after_bytes=1000, times=MANY),), "fail", ("do not match the pin",)),
    Case("size-lie-bigger-pinned", lie=+1000, expect="fail", words=("the Hub says",)),
    Case("size-lie-smaller-pinned", lie=-1000, expect="fail", words=("the Hub says",)),
    Case("size-lie-bigger-unpinned", lie=+1000, pin_size=False, expect="fail"),
    Case("size-lie-smaller-unpinned", lie=-1000, pin_size=False, expect="fail"),
]


@dataclass
class Run:
    case: Case
    repo: object
    index: Path
    code: int = -1
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    uses: int = 0
    requests: list = field(default_factory=list)
    available: tuple[bool, bool] = (False, False)  # right after the faulty warm: quick check, deep status


def _names(case: Case) -> tuple[str, str]:
    return f"{case.id}.safetensors", f"{case.id}.yaml"


def _liar(case: Case, big: str, size: int):
    def rewrite(ex: Exchange) -> None:
        if "/resolve/" in ex.path and ex.path.endswith(big) and ex.status in (200, 206):
            ex.set_header("X-Linked-Size", str(size + case.lie))
    return rewrite


class Runner:
    """One test Hub, every case started at once in its own process; each test collects its own case."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {"HF_HOME": str(base / "hf"), "LYRICSUB_STATE_DIR": str(base / "state")}
        self.cache = base / "cache"
        self.hub = TestHub().start()
        self.proxies: dict[str, Proxy] = {}
        self.pool = ThreadPoolExecutor(max_workers=len(CASES))
        self.futures: dict[str, Future] = {c.id: self.pool.submit(self._go, i, c) for i, c in enumerate(CASES)}

    def _go(self, i: int, case: Case) -> Run:
        big, small = _names(case)
        size = SEGMENTED_SIZE if case.segmented else SMALL_SIZE
        repo = add(self.hub, f"demucs:f-{case.id}", f"test/f-{case.id}", {small: b"fault: %d\n" % i, big: payload(300 + i, size)})
        index = write_index(self.base / f"{case.id}.yaml", [repo])
        if not case.pin_size:
            index.write_text(index.read_text().replace(f"size: {size}, ", ""))
        for spec in case.faults:
            spec = dict(spec)
            target = spec.pop("target")
            self.hub.inject(Fault(path_contains=big if target == "big" else small, **spec))
        endpoint = self.hub.endpoint
        if case.lie:
            proxy = self.proxies[case.id] = Proxy(self.hub.endpoint, _liar(case, big, size)).__enter__()
            endpoint = proxy.endpoint
        run = Run(case, repo, index)
        args = warm_args(endpoint, index, repo.model, cache_dir=self.cache) + (["--json"] if case.json else [])
        started = time.monotonic()
        proc = run_cli(*args, env={**self.env, **case.env}, timeout=150)
        run.code, run.out, run.err, run.seconds = proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started
        mgr = ModelManager(index, self.cache, state_dir=self.base / "check-state")
        run.available = (mgr.check_model_availability(repo.model), mgr.status(repo.model, verify="deep").available)
        run.requests = [r for r in self.hub.requests if big in r.path or small in r.path]
        for spec in case.faults:
            name = big if spec["target"] == "big" else small
            matching = [r for r in run.requests if r.path.split("?")[0].endswith(name)
                        and (spec["method"] is None or r.method == spec["method"])]
            run.uses += min(spec["times"], len(matching))
        return run

    def get(self, case_id: str) -> Run:
        return self.futures[case_id].result(timeout=180)

    def close(self) -> dict:
        runs = [f.result() for f in self.futures.values() if f.done() and not f.exception()]
        self.pool.shutdown(wait=True)
        for proxy in self.proxies.values():
            proxy.__exit__(None, None, None)
        errors = list(self.hub.errors)
        self.hub.stop()
        assert errors == []
        return {"cases": len(CASES), "faults_injected": sum(r.uses for r in runs),
                "recover_cases": sum(c.expect == "recover" for c in CASES),
                "recovered": sum(1 for r in runs if r.case.expect == "recover" and r.code == 0),
                "faults_survived": sum(r.uses for r in runs if r.case.expect == "recover" and r.code == 0),
                "fail_cases": sum(c.expect == "fail" for c in CASES),
                "clean_errors": sum(1 for r in runs if r.case.expect == "fail" and r.code != 0
                                    and len(error_lines(r.err)) == 1 and "Traceback" not in r.err),
                "clean_errors_exit_3": sum(1 for r in runs if r.case.expect == "fail" and r.code == 3),
                "per_case": {r.case.id: {"expect": r.case.expect, "exit": r.code, "fault_uses": r.uses,
                                         "seconds": round(r.seconds, 2), "error": (error_lines(r.err) or [None])[0]}
                             for r in runs}}


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    started = Runner(tmp_path_factory.mktemp("faults"))
    yield started
    write_results("faults", started.close())


def _params(expect: str) -> list:
    return [pytest.param(c.id, id=c.id) for c in CASES if c.expect == expect]


def _big_gets(run: Run) -> list:
    big, _ = _names(run.case)
    return [r for r in run.requests if r.method == "GET" and r.path.split("?")[0].endswith(big)]


@pytest.mark.parametrize("case_id", _params("recover"))
def test_fault_is_survived_and_the_model_verifies(runner, case_id: str) -> None:
    run = runner.get(case_id)
    assert run.code == 0, run.err[-2000:]
    assert error_lines(run.err) == [] and "Traceback" not in run.err
    assert run.uses == sum(f["times"] for f in run.case.faults)  # every injected fault really hit a request
    mgr = ModelManager(run.index, runner.cache)
    assert mgr.status(run.repo.model, verify="deep").available and snapshot_is_true(runner.cache, run.repo)
    size = SEGMENTED_SIZE if run.case.segmented else SMALL_SIZE
    served = sum(r.bytes_sent for r in _big_gets(run))
    if case_id in ("drop-mid-body", "truncate-mid-body"):  # resumed with Range, not fetched again from zero
        assert [r.range is not None for r in _big_gets(run)] == [False, True]
        assert served <= size + (1 << 18)
    if case_id in ("segment-drop", "segment-truncate"):  # only the broken segment was asked for again, from its cut
        cut = next(f["after_bytes"] for f in run.case.faults)
        gets = sorted(_big_gets(run), key=lambda r: r.started)
        broken = next(r for r in gets if r.bytes_sent == cut)
        start = int(broken.range.removeprefix("bytes=").split("-")[0]) if broken.range else 0
        later = [int(r.range.removeprefix("bytes=").split("-")[0]) for r in gets if r.started > broken.started and r.range]
        assert start + cut in later  # the retry asked from where the broken answer stopped, not from its start
        # a range the file cut short as it split (pieces) costs what was in flight on loopback; a refetch of the
        # file or of a whole segment would cost far more
        assert served <= size + 8 * (1 << 20)
    if case_id in ("flip-once", "segment-flip"):  # the bad bytes were thrown away and the file fetched once more
        slack = 16 << 20 if run.case.segmented else 2 << 20  # what ranges cut short at the tail had in flight
        assert size * 2 <= served <= size * 2 + slack
    if case_id == "429-retry-after":  # Retry-After: 1 was honoured, and --json said so
        events = [json.loads(line) for line in run.out.splitlines()]
        said = [e["message"] for e in events if e["event"] == "progress" and "rate limited" in (e["message"] or "")]
        assert len(said) == 1 and "(HTTP 429): waiting 1s as it asks" in said[0]
        assert events[-1]["event"] == "summary" and events[-1]["ok"]
    if case_id == "slow-body":  # 12 s of trickle above the floor: no read gave up, nothing was asked twice
        assert [(r.range, r.bytes_sent) for r in _big_gets(run)] == [(None, size)]
    if case_id == "redirect":  # the other host served the bytes and never saw the token
        cdn = [r for r in run.requests if r.origin == "cdn"]
        assert len(cdn) == 2 and all(r.status == 200 and not r.authorization_present for r in cdn)
        assert all(r.authorization_present for r in run.requests if r.origin == "hub")
        assert TOKEN not in run.out + run.err


@pytest.mark.parametrize("case_id", _params("fail"))
def test_fault_beyond_the_retries_ends_in_one_clear_line_and_nothing_available(runner, case_id: str) -> None:
    run = runner.get(case_id)
    line = assert_clean_failure(run.code, run.out, run.err, run.case.codes, run.repo.model, *run.case.words)
    assert "(run: lyricsub-hub " in line
    assert run.available == (False, False)  # neither the quick check nor a deep one calls it available
    big, _ = _names(run.case)
    data = run.repo.files[big]
    blob = blobs_dir(runner.cache, run.repo.repo) / sha256(data)
    assert not blob.exists() or blob.read_bytes() == data  # nothing wrong was ever published
    assert held_bytes(runner.cache, run.repo.repo, sha256(data)) <= len(data)


@pytest.mark.parametrize("case_id", _params("fail"))
def test_fault_beyond_the_retries_is_bounded_and_quiet(runner, case_id: str) -> None:
    """README: at most 5 tries in a row per file, none ending past 60 s; stderr holds our progress lines and the one
    error line."""
    run = runner.get(case_id)
    assert run.seconds < 60
    if run.case.faults and run.case.faults[0]["times"] == MANY:
        tries = re.search(r"after (\d+) tries", run.err)
        assert tries and 2 <= int(tries.group(1)) <= 5, run.err[-500:]
        assert run.uses == int(tries.group(1)), f"{run.uses} requests"  # our own tries, nobody else's
    noise = [line for line in run.err.splitlines() if line and not line.startswith(("lyricsub-hub:", run.repo.model + ":"))]
    assert noise == []
