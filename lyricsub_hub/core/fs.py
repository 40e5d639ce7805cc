"""File operations that stay safe in a cache other local users can write to.

New files are made with O_EXCL (as mkstemp does) and never through a planted link;
existing ones are opened with O_NOFOLLOW and must be regular files we own with
one link; nothing is ever unlinked outside the folder it belongs to. One copy of
atomic writing for the whole package.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def _read_umask() -> int:
    """Read once at import: os.umask is process-wide and not thread-safe to probe later."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()
FILE_MODE = 0o666 & ~UMASK  # what huggingface_hub gives blobs (file_mode adds group bits in a team's folder)
_O_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(OSError):
    """A path that is a link, not ours, or outside the folder it must stay in."""


def inside(base: str | os.PathLike[str], candidate: str | os.PathLike[str], *, base_is_real: bool = False) -> bool:
    """True when candidate, resolved, stays under base (resolved, unless already real)."""
    root = os.fspath(base) if base_is_real else os.path.realpath(base)
    return os.path.realpath(candidate).startswith(root.rstrip(os.sep) + os.sep)


def group_shared(folder: str | os.PathLike[str]) -> bool:
    """Does a group share this folder? Group-writable and setgid (the admin's setup for a team), or group-writable
    under a umask that keeps group write (002, user-private groups): what we create in it must then serve the group."""
    try:
        return _shares(os.stat(folder).st_mode)
    except OSError:
        return False


def _shares(mode: int) -> bool:
    return bool(mode & stat.S_IWGRP) and bool(mode & stat.S_ISGID or not UMASK & stat.S_IWGRP)


def file_mode(folder: str | os.PathLike[str], mode: int = 0o666) -> int:
    """The mode for a new file in folder: mode less the umask, plus the owner's read/write for the group where a
    group shares the folder (a lock file, a ranges record or a ref another member must open or read)."""
    bits = mode & ~UMASK
    if group_shared(folder):
        bits |= (mode & 0o600) >> 3
    return bits


def make_dirs(folder: Path, *, private: bool = False) -> list[Path]:
    """mkdir -p, where each folder it creates appears with its final mode, never the umask's for a moment:
    0700 when private; in a folder a group shares, group rwx and the parent's setgid (so the next member can add
    to it); else the umask's. A folder is made under a temporary name, given its mode through its descriptor and
    renamed into place, so a thread or member creating the same path never sees (or builds on) a half-set one.
    Returns the folders created."""
    missing = []
    probe = folder
    while not os.path.isdir(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    made = []
    for path in reversed(missing):
        parent = os.stat(path.parent).st_mode
        if private:
            mode = 0o700
        elif _shares(parent):
            mode = (0o777 & ~UMASK) | 0o070 | (parent & stat.S_ISGID)
        else:
            try:
                os.mkdir(path)
                made.append(path)
            except FileExistsError:
                pass
            continue
        if _mkdir_with_mode(path, mode):
            made.append(path)
    return made


def _mkdir_with_mode(path: Path, mode: int) -> bool:
    import threading

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident():x}.mkdir")
    try:
        os.mkdir(tmp, 0o700)
    except OSError as exc:  # name the folder we may not write in, not our temporary name
        raise OSError(exc.errno, exc.strerror, os.fspath(path.parent)) from None
    try:
        fd = os.open(tmp, _O_DIR)  # never chmod through a link someone swapped in since the mkdir
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        if os.path.isdir(path):
            raise FileExistsError(errno.EEXIST, "made meanwhile", os.fspath(path))
        os.rename(tmp, path)  # onto a name made meanwhile: EEXIST/ENOTEMPTY, or an empty one replaced by ours
    except OSError as exc:
        try:
            os.rmdir(tmp)
        except OSError:
            pass
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and os.path.isdir(path):
            return False
        raise
    return True


def real_dir(folder: Path, base: Path) -> Path:
    """Create folder (and parents) under base; refuse when it, or a folder between, is a link leaving base."""
    make_dirs(folder)
    if not inside(base, folder) and os.path.realpath(folder) != os.path.realpath(base):
        raise UnsafePathError(errno.EXDEV, f"{folder} leaves {base}")
    if os.path.islink(folder):
        raise UnsafePathError(errno.ELOOP, f"{folder} is a symbolic link")
    return folder


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, fsync: bool = False) -> None:
    """Write to a fresh O_EXCL temp file beside path, then rename over it: readers see old or new, never half.

    The mode is set on the descriptor (mkstemp makes 0600): less the umask, plus group read/write where a group
    shares the folder (file_mode); a private mode (0600) stays private."""
    fd, tmp = _exclusive(path.parent, f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), file_mode(path.parent, mode) if mode & 0o066 else mode & ~UMASK)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        _quiet_unlink(tmp)
        raise


def new_temp(folder: Path, prefix: str) -> tuple[int, Path]:
    """An O_EXCL temp file in folder (never an existing name, never through a link)."""
    return _exclusive(folder, prefix)


def _exclusive(folder: Path, prefix: str) -> tuple[int, Path]:
    """tempfile.mkstemp's contract (O_EXCL|O_NOFOLLOW, mode 0600, a random name, another on a clash) without
    importing tempfile, which costs a command's start 1.5 ms (random, shutil)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = folder / f"{prefix}{os.urandom(6).hex()}.tmp"
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder}")


def open_own(path: Path, flags: int) -> int:
    """Open an existing file without following a link; refuse anything but a regular file we own, with one link.

    A hard link to someone else's file, a symlink planted in a shared folder, or a file another
    user made all raise UnsafePathError, so an append or a chmod can never reach a victim's file.
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            raise UnsafePathError(errno.EPERM, f"{path} is not a regular file of ours with one link")
    except BaseException:
        os.close(fd)
        raise
    return fd


def regular_file(path: Path) -> os.stat_result | None:
    """lstat of path when it is a regular file (not a link); None otherwise."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def unlink_inside(path: Path, base: Path) -> bool:
    """Remove the directory entry path (a link is removed itself, never its target) when its folder is inside base."""
    if not inside(base, path.parent) and os.path.realpath(path.parent) != os.path.realpath(base):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def replace_link(link: Path, target: str) -> None:
    """Point link at target (a relative path) atomically: a temp link renamed over the old entry."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{id(link):x}.lnk")
    _quiet_unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        _quiet_unlink(tmp)
        raise


def _quiet_unlink(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def private_problem(folder: Path) -> str | None:
    """Why folder cannot hold records that vouch for files (as ssh judges its key folder); None when it can.

    Another user's folder, or one that group or others may write, could hold records saying anything.
    A folder that does not exist yet is fine: we create it 0700.
    """
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {folder}: {exc.strerror}"
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(folder)
        return private_problem(Path(target)) if target != os.fspath(folder) else "it is a dangling link"
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a folder"
    if st.st_uid != os.geteuid():
        return f"{folder} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"{folder} can be written by {'others' if st.st_mode & 0o002 else 'its group'} (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def private_dir(folder: Path, root: Path | None = None) -> Path:
    """Create folder 0700 whatever the umask, with every missing folder from root (default: folder itself) down to
    it; folders above root are made as usual. mkdir's own mode is masked by the umask (775 under umask 002, which
    the safety check then refuses), so the mode is set after creation."""
    top = root if root is not None else folder
    if not os.path.isdir(top):
        make_dirs(top.parent)
    make_dirs(top, private=True)
    if folder != top:
        make_dirs(folder, private=True)
    return folder


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY) -> int:
    """Open an existing file for reading without following a link and without waiting on a FIFO; refuse anything
    that is not a regular file (fstat), so a FIFO, a device or a socket planted in a cache or state folder can
    never hang or feed a command. Raises UnsafePathError for those, OSError as usual otherwise."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(errno.EPERM, f"{os.fspath(path)} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of a regular file (see open_regular), at most limit of them: a larger file raises ValueError."""
    fd = open_regular(path)
    try:
        data = os.pread(fd, limit + 1, 0)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{os.fspath(path)} is larger than {limit} bytes")
    return data


def real_folder_problem(folder: Path, base: Path) -> str | None:
    """Why folder cannot be used as a folder directly inside base (lstat: a link, a file, a FIFO); None when it can,
    or when it does not exist. Another user of a shared cache may replace a folder by a link to anywhere."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot read {folder}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return f"{folder} is a symbolic link, not a folder"
    if not stat.S_ISDIR(st.st_mode):
        return f"{folder} is not a folder"
    if os.path.realpath(folder.parent) != os.path.realpath(base) and not inside(base, folder):
        return f"{folder} leaves {base}"
    return None


def on_disk(st: os.stat_result) -> int:
    """Bytes a file takes on disk (blocks), not the size it claims: a sparse 8 TiB file holds next to nothing."""
    return min(st.st_size, st.st_blocks * 512) if hasattr(st, "st_blocks") else st.st_size
