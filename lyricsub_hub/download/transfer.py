"""Transfers: how one file's bytes get from the Hub into its part file, behind one small protocol.

`Ranged` is the transfer: a file below SPLIT_MIN, or one whose server takes no
ranges, comes down one connection; a larger one is split into byte ranges over
several connections of the shared pool, and a connection that finishes early
takes half of the largest range still running. Either way the part file keeps
every finished byte for the next run, the hash grows with the contiguous prefix,
and the blob takes its name only when its sha256 matches the pin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..cache.parts import PartFile
from ..core.checks import clean_etag, is_git_sha1
from ..core.digest import mismatch
from ..remote.http import BadBytes, Cancelled, HttpStatus, NoFirstByte, Stream
from ..remote.resolve import FileSource, check_answer, resolve, resolve_url
from .hasher import PrefixHasher
from .plan import SEGMENT_MIN

if TYPE_CHECKING:
    from .execute import FileJob

_ALIGN = 1 << 16
# Take over half of a running range only when it is this large: closing a connection mid-range costs what was in
# flight, and a mirror that fills blocks upstream (olah) drops the block it was filling for it.
STEAL_MIN = 4 * SEGMENT_MIN


class Transfer(Protocol):
    """How a FileJob's bytes arrive. begin() runs on a pool connection with the blob lock held."""

    def begin(self, job: FileJob) -> None: ...

    def release(self, job: FileJob, ok: bool) -> None: ...


@dataclass
class _Segment:
    pos: int
    end: int
    gen: int


@dataclass
class _State:
    part: PartFile
    hasher: PrefixHasher
    source: FileSource | None
    gen: int = 0
    whole: bool = False  # no ranges: one stream from byte 0
    segments: list[_Segment] = field(default_factory=list)
    streams: set[Stream] = field(default_factory=set)
    etag: str | None = None
    refreshes: int = 0
    resumed: int = 0
    finished: bool = False
    refresh_lock: threading.Lock = field(default_factory=threading.Lock)


class Ranged:
    """The default transfer: one connection for small files, up to `connections` ranges for large ones."""

    def __init__(self, connections: int) -> None:
        self.connections = max(1, connections)

    # -- start ------------------------------------------------------------------------------------
    def begin(self, job: FileJob) -> None:
        fp = job.fplan
        source = None
        if fp.size is None or (fp.split and self.connections > 1):
            source = self._resolve(job)
            job.size = source.size
        assert job.size is not None
        part = PartFile(job.engine.cache.cache_dir, job.spec.repo, fp.sha256, job.size)
        git = source is None or is_git_sha1(source.etag)
        hasher = PrefixHasher(part.fd, job.size, part.done.prefix, git_sha1=git)
        st = _State(part, hasher, source, etag=source.etag if source else None, resumed=part.done.covered())
        st.whole = source is not None and not source.ranges
        job.state = st
        self._schedule(job)

    def _resolve(self, job: FileJob) -> FileSource:
        fp, spec = job.fplan, job.spec
        assert spec.revision is not None
        while True:
            began = time.monotonic()
            try:
                return resolve(job.engine.client, model=spec.name, repo=spec.repo, commit=spec.revision, fname=fp.name,
                               size=job.size, sha256=fp.sha256)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                job.run.cancel.wait(job.pause(exc, False, time.monotonic() - began))

    def _schedule(self, job: FileJob) -> None:
        st: _State = job.state
        gaps = st.part.done.gaps(job.known_size)
        if not gaps:
            self._finish(job)
            return
        with job.lock:
            st.gen += 1
            if st.whole:
                st.segments = [_Segment(0, job.known_size, st.gen)]  # from byte 0 (rewriting what is there is harmless)
            elif st.source is None or self.connections == 1:
                st.segments = [_Segment(gaps[0][0], job.known_size, st.gen)]  # one connection, from the first gap on
            else:
                st.segments = _split(gaps, self.connections, st.gen)
            todo = list(st.segments)
        for seg in todo:
            job.engine.submit(job, self._runner(job, seg))

    # -- one connection ---------------------------------------------------------------------------
    def _runner(self, job: FileJob, seg: _Segment) -> Callable[[], None]:
        return lambda: self._run(job, seg)

    def _run(self, job: FileJob, seg: _Segment | None) -> None:
        st: _State = job.state
        while seg is not None:
            if not self._fetch(job, st, seg):
                return
            seg = self._next(job, st, seg)

    def _fetch(self, job: FileJob, st: _State, seg: _Segment) -> bool:
        """Bring [seg.pos, seg.end) to disk, retrying; False when this segment was superseded."""
        fp = job.fplan
        while seg.pos < seg.end:
            if seg.gen != st.gen or job.ended.is_set():
                return False
            if job.run.cancel.is_set():
                raise Cancelled()
            began, before = time.monotonic(), seg.pos
            try:
                self._one_try(job, st, seg)
            except _Restart:
                return False
            except Exception as exc:
                if seg.gen != st.gen or job.ended.is_set():
                    return False
                if self._refresh(job, st, exc):
                    continue
                if isinstance(exc, NoFirstByte) and not st.whole and seg.pos == before:
                    job.run.emit("download", fp.name, message=f"{exc}; asking for the whole file instead")
                    self._restart(job, st, seg, whole=True)
                    return False
                delay = job.pause(exc, seg.pos > before, time.monotonic() - began)
                job.run.cancel.wait(delay)
        return True

    def _one_try(self, job: FileJob, st: _State, seg: _Segment) -> None:
        fp, spec = job.fplan, job.spec
        assert spec.revision is not None
        url = st.source.location if st.source else resolve_url(job.engine.client.endpoint, spec.repo, spec.revision, fp.name)
        whole = st.whole or (seg.pos == 0 and seg.end == job.known_size)
        stream = job.engine.client.get(url, start=0 if whole else seg.pos, end=None if whole else seg.end, total=job.known_size)
        with job.lock:
            st.streams.add(stream)
        job.run.register(stream.close)
        try:
            if st.source is None:  # no HEAD was made: the answer itself says what the Hub holds
                check_answer(stream.first_headers, model=spec.name, commit=spec.revision, fname=fp.name, size=job.known_size,
                             sha256=fp.sha256, whole=stream.status == 200 and stream.first_headers is stream.headers)
                st.etag = clean_etag(stream.first_headers.get("x-linked-etag") or stream.first_headers.get("etag"))
                if not is_git_sha1(st.etag):
                    st.hasher.drop_git()
            if stream.ignored_range:
                job.run.emit("download", fp.name, message="the server ignores byte ranges; fetching the whole file")
                self._restart(job, st, seg, whole=True)
                raise _Restart()
            offset = stream.start
            for data in stream.chunks():
                with job.lock:
                    if seg.gen != st.gen:
                        raise _Restart()
                    n = min(len(data), seg.end - offset)
                    if n <= 0:
                        break
                    view = memoryview(data)[:n]
                    st.part.write(offset, view)
                    at = offset
                    offset += n
                    seg.pos = max(seg.pos, offset)
                st.hasher.offer(at, view)
                job.run.add(fp.name, n)
                if offset >= seg.end:
                    break
        finally:
            job.run.unregister(stream.close)
            with job.lock:
                st.streams.discard(stream)
            stream.finish()

    def _refresh(self, job: FileJob, st: _State, exc: BaseException) -> bool:
        """A signed download URL that expired (403 from the CDN host): ask the Hub for a fresh one and go on."""
        if not (isinstance(exc, HttpStatus) and exc.on_redirect_target and exc.status in (401, 403, 410)) or st.source is None:
            return False
        with st.refresh_lock:  # segments that hit the same expired address ask the Hub once
            if st.source.location != exc.url:
                return True  # another segment already got a fresh one
            st.refreshes += 1
            if st.refreshes > job.engine.policy.attempts:
                return False
            job.run.emit("download", job.fplan.name, message=f"download address refused (HTTP {exc.status}); asking the Hub again")
            st.source = self._resolve(job)
        return True

    def _restart(self, job: FileJob, st: _State, seg: _Segment, *, whole: bool) -> None:
        """Supersede every running segment (their streams close) and start again with a new plan; once per
        generation, however many segments saw the reason at the same time."""
        with job.lock:
            if seg.gen != st.gen:
                return
            st.whole = st.whole or whole
            st.gen += 1
            streams = list(st.streams)
        for stream in streams:
            stream.close()
        job.engine.submit(job, lambda: self._schedule(job))

    def _next(self, job: FileJob, st: _State, done: _Segment) -> _Segment | None:
        """After a segment: take half of the largest one still running, or finish the file when none is left."""
        with job.lock:
            if done in st.segments:
                st.segments.remove(done)
            if done.gen != st.gen:
                return None
            running = [s for s in st.segments if s.gen == st.gen]
            if running and not st.whole:
                victim = max(running, key=lambda s: s.end - s.pos)
                left = victim.end - victim.pos
                if left >= STEAL_MIN:
                    mid = victim.pos + (left // 2) // _ALIGN * _ALIGN
                    stolen = _Segment(mid, victim.end, st.gen)
                    victim.end = mid
                    st.segments.append(stolen)
                    return stolen
            last = not running and not st.finished
            if last:
                st.finished = True
        if last:
            self._finish(job)
        return None

    # -- the end ----------------------------------------------------------------------------------
    def _finish(self, job: FileJob) -> None:
        st: _State = job.state
        fp, spec = job.fplan, job.spec
        if st.part.done.gaps(job.known_size):  # superseded segments left holes: plan again
            st.finished = False
            self._schedule(job)
            return
        sha256, git = st.hasher.finish()
        blob = git if is_git_sha1(st.etag) else sha256
        problem = None
        bad = mismatch(sha256, git, pin=fp.sha256, name=st.etag)
        if bad is not None and bad.against == "pin":
            problem = f"{fp.name}: the bytes hash to {sha256[:12]}…, the pin is {fp.sha256[:12]}…"
        elif bad is not None:
            problem = f"{fp.name}: the bytes' git id {str(git)[:12]}… differs from the Hub's etag {str(st.etag)[:12]}…"
        if problem:
            st.part.reset()
            delay = job.pause(BadBytes(problem), False, 0.0)
            st.hasher = PrefixHasher(st.part.fd, job.known_size, st.part.done.prefix, git_sha1=st.hasher.git is not None)
            st.finished, st.resumed = False, 0
            job.engine.later(delay, job, lambda: self._schedule(job))
            return
        cache = job.engine.cache
        assert blob is not None
        stamp = cache.publish(st.part.fd, st.part.paths.part, spec.repo, blob, sha256)
        cache.link(spec, fp.name, blob)
        cache.remember(spec, {fp.name: stamp})
        st.part.discard()
        job.succeed(st.resumed)

    def release(self, job: FileJob, ok: bool) -> None:
        st: _State | None = job.state
        if st is None:
            return
        with job.lock:
            st.gen += 1
            streams = list(st.streams)
        for stream in streams:
            stream.close()
        if not ok:
            st.hasher.stop()
        st.part.close()  # the part file and its record stay for the next run


class _Restart(Exception):
    """This segment was superseded (the file starts over as one stream)."""


def _split(gaps: list[tuple[int, int]], n: int, gen: int) -> list[_Segment]:
    """Cut the missing ranges into at most n segments of similar size, none below SEGMENT_MIN."""
    total = sum(e - s for s, e in gaps)
    count = max(1, min(n, total // SEGMENT_MIN))
    target = -(-total // count)
    out: list[_Segment] = []
    for start, end in gaps:
        pos = start
        while pos < end:
            stop = end if end - pos < target + SEGMENT_MIN else pos + target // _ALIGN * _ALIGN
            out.append(_Segment(pos, stop, gen))
            pos = stop
    return out


def _retryable(exc: BaseException) -> bool:
    from ..remote.failures import is_transient

    return is_transient(exc)
