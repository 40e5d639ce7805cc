"""Transfers: how one file's bytes get from the Hub into its part file, behind one small protocol.

`Ranged` is the transfer. Every file starts on one connection. A large file whose
server takes ranges is split late: when the engine has room for another body
(adapt.py decides how many), the file's measured rate says the rest would take
longer than SPLIT_AFTER, and its connections spend more time waiting for bytes
than writing and hashing them (else this machine is the bound, and a file's
sha256 is sequential, so another connection only adds work), half of its largest
running range goes to a new connection; a connection that finishes early takes
half of the largest range still running. A connection the engine sheds, or one a
host refused with 429, hands its rest back to the file's pending ranges. Either
way the part file keeps every finished byte for the next run, the hash grows with the contiguous prefix,
and the blob takes its name only when its sha256 matches the pin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from ..cache.parts import PartFile
from ..core.checks import clean_etag, is_git_sha1
from ..core.digest import mismatch
from ..remote.failures import rate_limited
from ..remote.http import BadBytes, Cancelled, HttpStatus, NoFirstByte, Stream
from ..remote.resolve import FileSource, check_answer, resolve, resolve_url
from .adapt import GateClosed
from .hasher import PrefixHasher

if TYPE_CHECKING:
    from .execute import FileJob

_ALIGN = 1 << 16
# No range is halved into pieces smaller than PIECE_MIN, nor one that would end within SPLIT_AFTER anyway: halving
# a running range closes its connection at the cut (what was in flight is lost, and a mirror that fills blocks
# upstream, as olah does, drops the block it was filling for it).
PIECE_MIN = 2 << 20
PIECE_TIME = 0.5  # seconds of one connection's bytes per piece (a 50 ms round trip then costs under 10%)
PIECE_MAX = 64 << 20
FIRST_PIECE = 8 << 20
SPLIT_AFTER = 0.2  # seconds: a file whose rest would take longer than this at its rate gets another connection
RATE_AFTER = 0.05  # seconds of a file's bytes before its rate is trusted
SHED_AFTER = 0.1  # seconds of its bytes a shed connection still reads before it ends


class Transfer(Protocol):
    """How a FileJob's bytes arrive. begin() runs on a pool connection with the blob lock held."""

    def begin(self, job: FileJob) -> None: ...

    def release(self, job: FileJob, ok: bool) -> None: ...

    def left(self, job: FileJob, now: float) -> float:
        """Seconds the file still needs at its rate, when it could use another connection (else 0)."""
        ...

    def host(self, job: FileJob) -> str: ...

    def grow(self, job: FileJob) -> bool:
        """Start one more connection for the file; False when it has nothing to give."""
        ...

    def shed(self, job: FileJob) -> bool:
        """Ask one of the file's connections (never its last) to end soon."""
        ...

    def shedding(self, job: FileJob) -> int:
        """The file's connections asked to end that are still open."""
        ...


@dataclass(eq=False)
class _Segment:
    pos: int
    end: int
    gen: int
    shed: bool = False  # the engine wants this connection back: it ends with this piece


@dataclass
class _State:
    part: PartFile
    hasher: PrefixHasher
    source: FileSource | None
    gen: int = 0
    whole: bool = False  # no ranges: one stream from byte 0
    segments: list[_Segment] = field(default_factory=list)
    pending: list[tuple[int, int]] = field(default_factory=list)  # ranges no connection holds now
    got: int = 0  # bytes received in this run (for the file's rate)
    first: float = 0.0  # when the first byte came (monotonic)
    waited: float = 0.0  # seconds its connections spent waiting for bytes ...
    worked: float = 0.0  # ... and writing and hashing them
    streams: set[Stream] = field(default_factory=set)
    etag: str | None = None
    refreshes: int = 0
    resumed: int = 0
    finished: bool = False
    refresh_lock: threading.Lock = field(default_factory=threading.Lock)


class Ranged:
    """The default transfer: one connection per file, more for a large file while the engine has room for them (at
    most `connections` in all, the ceiling)."""

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
        job.engine.track(job, True)
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
            st.pending = []  # a new plan: pieces of an earlier one are not handed out again
            if st.whole:
                st.segments = [_Segment(0, job.known_size, st.gen)]  # from byte 0 (rewriting what is there is harmless)
            elif st.source is None or self.connections == 1:
                st.segments = [_Segment(gaps[0][0], job.known_size, st.gen)]  # one connection, from the first gap on
            else:  # piece by piece in file order, on one connection until the engine has room for more
                st.pending = list(gaps)
                st.segments = [self._take_pending(st)]
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
                told = rate_limited(exc)
                if told is not None and self._hand_back(job, st, seg, exc, told):
                    return True  # another connection of this file goes on; this one gives its place back
                if told:  # told when to come back: wait as told, not a failed try
                    delay = job.pause_refused(exc, told, st.got, time.monotonic() - began)
                else:  # a 429 that names no wait (or 0) is treated as any failed try, so a refusing server ends it
                    delay = job.pause(exc, seg.pos > before, time.monotonic() - began)
                job.run.cancel.wait(delay)
        return True

    def _hand_back(self, job: FileJob, st: _State, seg: _Segment, exc: BaseException, told: float) -> bool:
        """A host refused this body (429, or 503 with a wait): lower what that host gets, and when another connection
        of this file is running, give the rest of this range to it rather than asking the host again."""
        job.engine.refused(job, exc, told, self.host(job))
        with job.lock:
            others = [s for s in st.segments if s is not seg and s.gen == st.gen and s.pos < s.end]
            if not others or st.whole or seg.gen != st.gen:
                return False
            if seg.pos < seg.end:
                st.pending.append((seg.pos, seg.end))
            seg.end = seg.pos
            seg.shed = True
        return True

    def _one_try(self, job: FileJob, st: _State, seg: _Segment) -> None:
        fp, spec = job.fplan, job.spec
        assert spec.revision is not None
        url = st.source.location if st.source else resolve_url(job.engine.client.endpoint, spec.repo, spec.revision, fp.name)
        whole = st.whole or (seg.pos == 0 and seg.end == job.known_size)
        engine = job.engine
        host = _netloc(url)
        try:
            engine.gate.enter(host, lambda: job.run.cancel.is_set() or job.ended.is_set() or seg.gen != st.gen)
        except GateClosed:
            if job.run.cancel.is_set():
                raise Cancelled() from None
            raise _Restart() from None
        try:
            stream = engine.client.get(url, start=0 if whole else seg.pos, end=None if whole else seg.end,
                                       total=job.known_size)
        except BaseException:
            engine.gate.leave(host)
            raise
        engine.gate.answered(host)
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
            mark = time.monotonic()
            worked = 0.0
            for data in stream.chunks():
                arrived = time.monotonic()
                with job.lock:
                    st.waited += arrived - mark
                    st.worked += worked
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
                    if not st.got:
                        st.first = time.monotonic()
                    st.got += n
                st.hasher.offer(at, view)
                job.run.add(fp.name, n)
                engine.count(n)
                if offset >= seg.end:
                    break
                mark = time.monotonic()
                worked = mark - arrived
        finally:
            job.run.unregister(stream.close)
            with job.lock:
                st.streams.discard(stream)
            stream.finish()
            engine.gate.leave(host, answered=True)

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
        """After a segment: the file's next pending piece, else half of the largest range still running, else finish
        the file when none is left. A connection the engine sheds, or one over its target, ends instead while other
        connections of the file run (they take what is pending)."""
        with job.lock:
            if done in st.segments:
                st.segments.remove(done)
            if done.gen != st.gen:
                return None
            running = [s for s in st.segments if s.gen == st.gen]
            if (done.shed or job.engine.over()) and running:
                return None
            if st.pending:
                nxt = self._take_pending(st)
                st.segments.append(nxt)
                return nxt
            if running and not st.whole:
                victim = max(running, key=lambda s: s.end - s.pos)
                left = victim.end - victim.pos
                if self._worth_splitting(st, left, len(running), time.monotonic()):
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

    @staticmethod
    def _take_pending(st: _State, now: float | None = None) -> _Segment:
        """The next piece in file order: the hash's prefix then follows the download instead of waiting for the end."""
        st.pending.sort()
        start, end = st.pending[0]
        piece = _piece(st, now if now is not None else time.monotonic())
        if end - start < piece + PIECE_MIN:
            st.pending.pop(0)
        else:
            end = start + piece
            st.pending[0] = (end, st.pending[0][1])
        return _Segment(start, end, st.gen)

    # -- the engine's offers ------------------------------------------------------------------------
    def left(self, job: FileJob, now: float) -> float:
        """Seconds this file still needs at its measured rate (0 when it cannot take another connection)."""
        st: _State | None = job.state
        if st is None or st.whole or st.source is None or self.connections == 1 or st.finished:
            return 0.0
        with job.lock:
            running = [s.end - s.pos for s in st.segments if s.gen == st.gen]
            pending = sum(e - s for s, e in st.pending)
            if not st.got or now - st.first < RATE_AFTER or st.worked > st.waited:
                return 0.0  # no rate yet, or the connections are busier writing and hashing than waiting for bytes
            if not pending and not (running and self._worth_splitting(st, max(running), len(running), now)):
                return 0.0
        return (sum(running) + pending) / (st.got / max(now - st.first, 1e-3))

    @staticmethod
    def _worth_splitting(st: _State, left: int, running: int, now: float) -> bool:
        """Halving a range pays when each half is at least PIECE_MIN and the range alone would still take longer than
        SPLIT_AFTER at one connection's share of the file's rate (a new body costs a request and, on a stolen range,
        the old connection)."""
        if left < 2 * PIECE_MIN or not st.got or now - st.first < RATE_AFTER or st.worked > st.waited:
            return False
        per = st.got / max(now - st.first, 1e-3) / max(1, running)
        return left / per > SPLIT_AFTER

    def host(self, job: FileJob) -> str:
        st: _State | None = job.state
        if st is not None and st.source is not None:
            return _netloc(st.source.location)
        return _netloc(job.engine.client.endpoint)

    def grow(self, job: FileJob) -> bool:
        """The engine has room: give this file one more connection (its next pending piece)."""
        st: _State = job.state
        with job.lock:
            if st.finished or job.ended.is_set():
                return False
            now = time.monotonic()
            if not st.pending:  # cut the longest running range after its next piece; the rest goes out piece by piece
                running = [s for s in st.segments if s.gen == st.gen and not s.shed]
                if not running:
                    return False
                victim = max(running, key=lambda s: s.end - s.pos)
                left = victim.end - victim.pos
                if left < 2 * PIECE_MIN:
                    return False
                cut = victim.pos + min(_piece(st, now), left // 2) // _ALIGN * _ALIGN
                st.pending.append((cut, victim.end))
                victim.end = cut
            seg = self._take_pending(st, now)
            st.segments.append(seg)
        job.engine.submit(job, self._runner(job, seg))
        return True

    def shed(self, job: FileJob) -> bool:
        """The engine has too many bodies open: one connection of this file (never its last) ends soon, after
        SHED_AFTER seconds of its bytes; the rest of its piece goes back to the file's pending ranges. Waiting for
        its piece to end could keep a dozen extra connections for seconds (pieces were sized before the line filled)."""
        st: _State | None = job.state
        if st is None:
            return False
        with job.lock:
            running = [s for s in st.segments if s.gen == st.gen and not s.shed and s.pos < s.end]
            if len(running) < 2 or st.whole:
                return False
            victim = min(running, key=lambda s: s.end - s.pos)
            victim.shed = True
            now = time.monotonic()
            per = st.got / max(now - st.first, 1e-3) / len(running) if st.got else 0.0
            cut = -(-(victim.pos + max(_ALIGN, int(per * SHED_AFTER))) // _ALIGN) * _ALIGN
            if cut < victim.end:
                st.pending.append((cut, victim.end))
                victim.end = cut
        return True

    def shedding(self, job: FileJob) -> int:
        st: _State | None = job.state
        if st is None:
            return 0
        with job.lock:
            return sum(1 for s in st.segments if s.gen == st.gen and s.shed and s.pos < s.end)

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
        job.engine.track(job, False)
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


def _piece(st: _State, now: float) -> int:
    """Bytes one connection gets in PIECE_TIME at its share of the file's rate (at least PIECE_MIN): small enough
    that the hashed prefix stays close behind, large enough that a request's round trip costs little."""
    running = max(1, sum(1 for s in st.segments if s.gen == st.gen and s.pos < s.end))
    if not st.got:  # no rate yet: one piece that says it (a quarter of a small file), then pieces by the rate
        return max(PIECE_MIN, min(FIRST_PIECE, sum(e - s for s, e in st.pending) // 4) // _ALIGN * _ALIGN)
    per = st.got / max(now - st.first, 1e-3) / running
    share = sum(e - s for s, e in st.pending) // (running + 1)  # near the end, pieces shrink so connections end together
    return max(PIECE_MIN, min(PIECE_MAX, int(per * PIECE_TIME), share or PIECE_MAX) // _ALIGN * _ALIGN)


def _netloc(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2].lower()


def _retryable(exc: BaseException) -> bool:
    from ..remote.failures import is_transient

    return is_transient(exc)
