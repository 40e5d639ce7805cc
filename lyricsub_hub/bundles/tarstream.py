"""A tar stream moved through one buffer: written for export, read for import, never seeking.

Headers are parsed and written by tarfile's TarInfo; data moves through one buffer that a helper thread
hashes while it is written (tarfile's own stream mode copies every byte several times, and extraction is
never left to it). What a member may be, and where it may go, is bundle.py's decision, not this module's.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..core.checks import safe_file_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Protocol

    Hasher = Any  # hashlib objects have no public common type

    class Readable(Protocol):
        """A bundle stream: a file, stdin, a pipe (read and readinto, never seek)."""

        def read(self, n: int = -1, /) -> bytes: ...

        def readinto(self, buffer: Any, /) -> int | None: ...

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 4 << 20  # one buffer moves every byte: large enough that handing it to the hash thread costs nothing
ASIDE = 1 << 18  # chunks from this size on are hashed on a helper thread while they are written
BLOCK = 512
RECORD = 20 * BLOCK  # tar's blocking factor: the archive ends on a record boundary
MAX_META = 1 << 20  # a pax or GNU long-name header's data
ZERO = bytes(BLOCK)
WRITE_MAX = 256 << 10  # one write() call at most: on Linux 6.x with ext4 (large folios), big writes into new files
# now and then cost several times the system time, spent in copy_folio_from_iter_atomic (this VM backs fresh memory
# lazily). Measured on this machine, 512 MiB through two threads, 15 interleaved runs each: 1 MiB writes 0.49-0.60 s
# in 15 of 15 runs, 256 KiB writes 0.25-0.27 s in every run, tar's 10 KiB writes 0.29 s; earlier, with dd, 4 MiB
# writes took 0.6-1.3 s of system time in 1 of 3 runs. Reads and hashes still go 1 MiB (CARRY) at a time.
CARRY = 1 << 20  # an import's helper threads read and hash this much at once (Python's per-call cost vanishes)


# -- moving bytes: one buffer, hashed on a helper thread while it is written --------------------------------
class Pump:
    """Moves a member's bytes from fill to drain through two buffers: while one chunk is hashed on a helper thread
    (hashlib releases the GIL on large buffers), the next is read and written, so a copy takes about as long as its
    hashing alone, not the sum of reading and hashing. Every byte written is the very byte hashed."""

    def __init__(self) -> None:
        self._views: tuple[memoryview, memoryview] | None = None
        self._pool: Any = None

    @property
    def views(self) -> tuple[memoryview, memoryview]:
        """Made on first use: an import of a plain bundle file never moves a byte through the pump (8 MiB spared)."""
        if self._views is None:
            self._views = (memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK)))
        return self._views

    def move(self, size: int, fill: Callable[[memoryview], None], drain: Callable[[memoryview], object],
             hashers: Sequence[Hasher]) -> None:
        if not hashers:  # copied only: export of what a verification record vouches for, where the kernel copy stopped
            left = size
            while left:
                chunk = self.views[0][:min(CHUNK, left)]
                fill(chunk)
                drain(chunk)
                left -= len(chunk)
            return
        if size < ASIDE:
            chunk = self.views[0][:size]
            fill(chunk)
            update_hashers(hashers, chunk)
            drain(chunk)
            return
        left, turn, hashing = size, 0, None
        try:
            while left:
                chunk = self.views[turn][:min(CHUNK, left)]
                fill(chunk)  # the other buffer may still be hashed meanwhile
                drain(chunk)
                if hashing is not None:
                    hashing.result()  # in order: the previous chunk first
                hashing = self._helper().submit(update_hashers, hashers, chunk)
                left -= len(chunk)
                turn ^= 1
        finally:
            if hashing is not None:
                hashing.result()

    def _helper(self) -> Any:
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lyricsub-bundle-hash")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def carry(src: int, at: int, size: int, dst: int, hashers: Sequence[Hasher], stop: Any = None) -> int:
    """size bytes of src from offset at into dst (pread, hash, write through one CARRY buffer that stays in the
    core's cache, so the hash reads it there), for a helper thread while the caller reads on: every byte written is
    the very byte hashed. Returns the bytes moved: fewer when src ends early or stop (an Event) is set."""
    view = memoryview(bytearray(min(CARRY, size) or 1))

    def write(data: memoryview) -> int:
        return os.write(dst, data)

    done = 0
    while done < size and not (stop is not None and stop.is_set()):
        n = os.preadv(src, [view[:min(len(view), size - done)]], at + done)
        if not n:
            break
        chunk = view[:n]
        update_hashers(hashers, chunk)
        write_all(write, chunk)
        done += n
    return done


def update_hashers(hashers: Sequence[Hasher], data: memoryview) -> None:
    for h in hashers:
        h.update(data)


def write_all(write: Callable[[memoryview], int | None], data: memoryview) -> None:
    while data:
        piece = data[:WRITE_MAX]
        n = write(piece)
        data = data[len(piece) if n is None else n:]  # a writer that takes everything (zstd's) says nothing


def fill_from_fd(fd: int, start: int = 0) -> Callable[[memoryview], None]:
    """Read an open file from start on, chunk after chunk (pread: the descriptor's offset never matters)."""
    pos = start

    def fill(view: memoryview) -> None:
        nonlocal pos
        got = 0
        while got < len(view):
            n = os.preadv(fd, [view[got:]], pos + got)
            if n == 0:
                raise EOFError
            got += n
        pos += got

    return fill


# -- the tar stream, written ------------------------------------------------------------------------------
class Counter:
    """The final sink: counts what reaches it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.count = raw, 0

    def write(self, data: memoryview | bytes) -> int:
        n = self.raw.write(data)
        n = len(data) if n is None else n
        self.count += n
        return n


class TarWriter:
    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self._direct = isinstance(sink, Counter) and _plain_file(sink.raw) and hasattr(os, "copy_file_range")
        self.mtime = int(time.time())
        self.count = 0  # tar bytes, before any compression

    def write(self, data: memoryview | bytes) -> None:
        write_all(self.sink.write, memoryview(data))
        self.count += len(data)

    def copy_from(self, fd: int, size: int) -> int:
        """Up to size bytes of fd (from offset 0) straight into a plain output file, in the kernel (copy_file_range);
        returns the bytes copied: 0 into a pipe, through zstd, or where the kernel refuses, and the caller writes
        the rest the usual way."""
        if not self._direct:
            return 0
        done = _kernel_copy(fd, self.sink.raw.fileno(), size)  # short or refused: the caller writes the rest
        self.sink.count += done
        self.count += done
        return done

    def member(self, name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.size, info.type, info.linkname, info.mtime = size, kind, linkname, self.mtime
        info.mode = 0o777 if kind == tarfile.SYMTYPE else 0o644
        info.uname = info.gname = ""
        self.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def pad(self, size: int) -> None:
        if size % BLOCK:
            self.write(ZERO[: BLOCK - size % BLOCK])

    def small(self, name: str, data: bytes) -> None:
        self.member(name, size=len(data))
        self.write(data)
        self.pad(len(data))

    def close(self) -> None:
        """Two zero blocks, then zeros up to tar's record size."""
        end = 2 * BLOCK
        self.write(bytes(end + -(self.count + end) % RECORD))


# -- the tar stream, read -----------------------------------------------------------------------------------
class Truncated(Exception):
    """The stream ended inside a member, or before the end-of-archive blocks."""


class Damaged(Exception):
    """A header that is not tar, or a zstd frame that does not decode: nothing after it can be trusted."""


class Source:
    """The bundle's bytes as they arrive (zstd-decoded when its magic says so), read in full or not at all."""

    def __init__(self, raw: Readable) -> None:
        self.raw = raw
        self.pos = 0  # of the decoded tar stream
        self.arrived = 0  # bytes of the bundle as it came
        self._head = b""
        while len(self._head) < len(ZSTD_MAGIC) and (more := raw.read(len(ZSTD_MAGIC) - len(self._head))):
            self._head += more
        self.empty = not self._head
        self._plain = _plain_file(raw) and hasattr(os, "preadv")
        self.fd = raw.fileno() if self._plain else -1  # type: ignore[attr-defined]  # a plain file is an io.FileIO
        self._zstd_error: tuple[type[BaseException], ...] = ()
        self._stream: Any = self
        if self._head == ZSTD_MAGIC:
            import zstandard

            self._zstd_error = (zstandard.ZstdError,)
            me: Any = self  # zstd reads the peeked magic and the rest through read()
            self._stream = zstandard.ZstdDecompressor().stream_reader(me, read_size=CHUNK,
                                                                       read_across_frames=True)

    def read(self, n: int = -1) -> bytes:
        """For the zstd reader: the raw bytes, the peeked magic first."""
        n = CHUNK if n < 0 else n
        if self._head:
            data, self._head = self._head[:n], self._head[n:]
        else:
            data = self.raw.read(n) or b""
        self.arrived += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        if self._head:
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        n = self.raw.readinto(view) or 0
        self.arrived += n
        return n

    def fill(self, view: memoryview) -> None:
        got = 0
        try:
            while got < len(view):
                n = self._stream.readinto(view[got:])
                if not n:
                    raise Truncated(f"it ends early, at byte {self.pos + got}")
                got += n
        except self._zstd_error as exc:
            raise Damaged(f"its zstd stream does not decode ({str(exc)[:80]})") from None
        except OSError as exc:
            raise Truncated(f"reading it failed at byte {self.pos + got}: {exc.strerror or exc}") from None
        self.pos += got

    @property
    def direct(self) -> bool:
        """A plain tar file read without a buffer: a member's data can be read at its offset by another thread."""
        return self._plain and self._stream is self and not self._head

    def hand_off(self, n: int) -> int | None:
        """Where the next n bytes lie in a plain bundle file, the stream moved past them (lseek), for a helper
        thread to read them with pread; None from a pipe, zstd, or a file that does not hold n more bytes (the
        caller reads on and learns where it ends)."""
        if not self.direct:
            return None
        fd = self.fd
        try:
            at = os.lseek(fd, 0, os.SEEK_CUR)
            if at + n > os.fstat(fd).st_size:
                return None
            os.lseek(fd, n, os.SEEK_CUR)
        except OSError:
            return None
        self.pos += n
        self.arrived += n
        return at

    def pass_over(self, n: int, scratch: memoryview) -> None:
        """Skip n bytes: by lseek in a plain file that holds them, else read into scratch and dropped."""
        if n and self.hand_off(n) is not None:
            return
        while n:
            view = scratch[: min(len(scratch), n)]
            self.fill(view)
            n -= len(view)

    def exact(self, n: int) -> bytes:
        buf = bytearray(n)
        self.fill(memoryview(buf))
        return bytes(buf)


@dataclass(frozen=True)
class Member:
    """One tar header as read from the stream, before anything of it touches the disk."""

    name: str
    kind: bytes
    size: int  # bytes of data that follow the header
    linkname: str
    at: int  # offset of its header in the (decoded) stream


def _plain_file(raw: object) -> bool:
    """A regular file opened without a buffer (io.FileIO): its descriptor's offset is exactly what was read or written."""
    if not isinstance(raw, io.FileIO):
        return False
    try:
        return stat.S_ISREG(os.fstat(raw.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _kernel_copy(src: int, dst: int, n: int) -> int:
    """Up to n bytes of src from its start into dst (at dst's offset) with copy_file_range. Returns the bytes copied:
    fewer at the source's end or where the kernel refuses (EXDEV, EINVAL, ENOSYS...)."""
    done = 0
    while done < n:
        try:
            got = os.copy_file_range(src, dst, n - done, done)
        except OSError:
            break
        if not got:
            break
        done += got
    return done


class TarReader:
    def __init__(self, src: Source) -> None:
        self.src = src
        self._left = 0  # data of the current member not read yet
        self._pad = 0
        self._scratch = memoryview(bytearray(1 << 20))

    def next(self) -> Member | None:
        """The next member, or None at the end-of-archive marker; skips whatever the caller left unread."""
        self.skip()
        extra: dict[str, Any] = {}
        while True:
            at = self.src.pos
            block = self.src.exact(BLOCK)
            if block == ZERO:
                return None
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise Damaged(f"the header at byte {at} is not tar ({exc})") from None
            if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                             tarfile.GNUTYPE_LONGLINK):
                if info.size > MAX_META:
                    raise Damaged(f"the extended header at byte {at} is {info.size} bytes long")
                data = self.src.exact(info.size + -info.size % BLOCK)[: info.size]
                if info.type == tarfile.GNUTYPE_LONGNAME:
                    extra["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif info.type == tarfile.GNUTYPE_LONGLINK:
                    extra["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif info.type != tarfile.XGLTYPE:
                    extra.update(parse_pax(data, at))
                continue
            size = int(extra.get("size", info.size))
            if info.type not in tarfile.REGULAR_TYPES and info.type in tarfile.SUPPORTED_TYPES:
                size = 0  # links, folders and devices carry no data, as tar reads them
            self._left, self._pad = size, -size % BLOCK
            return Member(extra.get("path", info.name), info.type, size, extra.get("linkpath", info.linkname), at)

    def fill(self, view: memoryview) -> None:
        assert len(view) <= self._left
        self.src.fill(view)
        self._left -= len(view)

    def hand_off(self) -> tuple[int, int] | None:
        """(descriptor, offset) of the rest of this member's data in a plain bundle file, which the reader moves past:
        a helper thread reads it with pread while the next header is read. None from a pipe or zstd."""
        at = self.src.hand_off(self._left)
        if at is None:
            return None
        self._left = 0
        return self.src.fd, at

    def data(self, limit: int) -> bytes:
        n = min(self._left, limit)
        buf = bytearray(n)
        self.fill(memoryview(buf))
        return bytes(buf)

    def skip(self) -> None:
        left, self._left = self._left + self._pad, 0
        self._pad = 0
        self.src.pass_over(left, self._scratch)


def parse_pax(data: bytes, at: int) -> dict[str, Any]:
    """path, linkpath and size from pax records ("<len> key=value\\n"); the rest is ignored."""
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        length = data[pos:space]
        if space < 0 or not length.isdigit() or int(length) <= space - pos or pos + int(length) > len(data):
            raise Damaged(f"the pax header at byte {at} is malformed")
        record = data[space + 1: pos + int(length)]
        key, eq, value = record.rstrip(b"\n").partition(b"=")
        if not eq or not record.endswith(b"\n"):
            raise Damaged(f"the pax header at byte {at} is malformed")
        if key in (b"path", b"linkpath"):
            out[key.decode()] = value.decode("utf-8", "surrogateescape")
        elif key == b"size":
            if not value.isdigit() or len(value) > 18:
                raise Damaged(f"the pax header at byte {at} gives a bad size")
            out["size"] = int(value)
        pos += int(length)
    return out


KIND_WORDS = {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "folder",
               tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo",
               tarfile.CONTTYPE: "contiguous file", tarfile.GNUTYPE_SPARSE: "sparse file"}


def kind_word(kind: bytes) -> str:
    return "file" if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else KIND_WORDS.get(kind, f"member of type {kind!r}")


def clean_name(name: str) -> str | None:
    """The member name as the manifest would spell it, or None when it is absolute, climbs, or is not plain."""
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    return name if safe_file_name(name) else None


