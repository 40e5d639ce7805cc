"""The per-blob lock huggingface_hub takes (.locks/models--org--name/<blob>.lock), taken by us in a way a team's
shared cache allows.

It is the same flock on the same file as huggingface_hub's filelock, so our writers
and its writers exclude each other. Unlike a plain FileLock it works for every
member of a group: a new lock file is made group-writable where the folder is
shared (huggingface_hub's own fix, PR #3714), and a lock file another member or an
older huggingface_hub made without group write is locked through a read-only
descriptor (flock needs none). A filesystem without flock (some NFS, Lustre, CIFS
mounts) is a clear local error, never a lock that silently does not exclude.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..core.fs import file_mode, open_regular, real_dir
from ..errors import Fix, LockUnsupportedError
from .layout import lock_path, repo_folder

_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)
_FLAGS = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class BlobLock:
    """acquire() without waiting: True when taken, False while another process holds it."""

    def __init__(self, path: Path, cache_dir: Path, model: str | None = None) -> None:
        self.path, self.cache_dir, self.model = path, cache_dir, model
        self._fd = -1

    def acquire(self) -> bool:
        import fcntl

        real_dir(self.path.parent, self.cache_dir)
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            if exc.errno in _NO_FLOCK:
                raise no_flock(self.cache_dir, exc.strerror or str(exc), self.model) from None
            raise
        self._fd = fd
        return True

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _FLAGS, 0o600)
        except FileExistsError:
            pass
        else:
            os.fchmod(fd, file_mode(self.path.parent))  # 0664 in a group's folder, whatever the umask
            return fd
        try:
            return os.open(self.path, os.O_RDWR | _FLAGS)
        except PermissionError:  # another member's lock file without group write: flock needs no write access
            return os.open(self.path, os.O_RDONLY | _FLAGS)

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)  # closing drops the flock


def take_lock(cache_dir: Path, repo: str, blob: str) -> tuple[BlobLock | None, str]:
    """A download's own blob lock, taken without waiting: (lock, "") or (None, why not). Whoever removes a part
    file or a blob takes it first, as a download does, so no download loses its bytes under it."""
    lock = BlobLock(lock_path(cache_dir, repo, blob), cache_dir)  # group-writable in a team's cache, as downloads make it
    try:
        taken = lock.acquire()
    except OSError as exc:
        return None, f"cannot take its lock: {exc.strerror or exc}"
    return (lock, "") if taken else (None, "a download started meanwhile and holds its lock")


def lock_held(path: Path) -> bool | None:
    """True when a process holds this flock lock, False when it is free or absent, None when that cannot be told.

    The probe opens an existing lock file read-only and never creates, truncates or deletes one.
    """
    import fcntl

    try:
        fd = open_regular(path)  # no link, and a planted FIFO neither hangs the probe nor counts as a lock
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def downloading(cache_dir: Path, repo: str) -> bool:
    """Whether a process holds one of the repo's blob locks now (ours and huggingface_hub's are the same files)."""
    folder = cache_dir / ".locks" / repo_folder(cache_dir, repo).name
    try:
        locks = [Path(e.path) for e in os.scandir(folder) if e.name.endswith(".lock")]
    except OSError:
        return False
    return any(lock_held(p) for p in locks)


def no_flock(cache_dir: Path, why: str, model: str | None = None) -> LockUnsupportedError:
    return LockUnsupportedError(
        f"the filesystem of {cache_dir} cannot take file locks (flock: {why}), so two downloads could write the same "
        "file at once; keep the cache on a local disk and read this one as a read-only site cache",
        model=model, hint=Fix("warm", *([model] if model else []),
                              env=(("HF_HUB_CACHE", "<a folder on a local disk>"), ("LYRICSUB_SITE_CACHE", str(cache_dir)))))
