"""One error hierarchy: every expected failure names the model, what is wrong,
and the command that fixes it, and carries the CLI exit code.

Each class also subclasses the matching built-in, so callers that already catch
``FileNotFoundError`` or ``ConnectionError`` keep working.
"""

from __future__ import annotations

# Exit codes, documented in the README; the CLI returns exactly these.
EXIT_OK = 0
EXIT_NOT_AVAILABLE = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3
EXIT_DISK = 4
EXIT_LOAD = 5
EXIT_CANCELLED = 130


class Fix(str):
    """The command that fixes a problem, as data: `command`, `args`, `env` (variables to set for it) and a `note`.

    It is also the spelled line (`HF_HUB_OFFLINE=0 lyricsub-hub warm NAME`), the one place `lyricsub-hub …` is
    written out, so it goes wherever a hint is text (a doctor finding, a gc skip, an f-string) unchanged. An error
    built with one carries it as `error.fix`; the CLI's JSON gives it as `fix` beside the `hint` line. `before` and
    `after` are the line's words around the command as written (`free space, then `, ` (once the download is
    done)`); they read in the hint line only, the JSON's fix is the command itself.
    """

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    note: str
    before: str
    after: str

    def __new__(cls, command: str, *args: str, env: tuple[tuple[str, str], ...] = (), note: str = "", before: str = "",
                after: str = "") -> Fix:
        line = before + "".join(f"{k}={v} " for k, v in env) + " ".join(["lyricsub-hub", command, *args]) + after
        self = super().__new__(cls, f"{line}  {note}" if note else line)
        self.command, self.args, self.env, self.note = command, tuple(args), tuple(env), note
        self.before, self.after = before, after
        return self

    def as_json(self) -> dict[str, object]:
        return {"command": self.command, "args": list(self.args), "env": dict(self.env), "note": self.note or None}


class Hint:
    """The next command for each kind of problem."""

    @staticmethod
    def warm(*names: str) -> Fix:
        return Fix("warm", *names)

    @staticmethod
    def lock(name: str) -> Fix:
        return Fix("lock", name)

    @staticmethod
    def lock_update(name: str) -> Fix:
        return Fix("lock", "--update", name)

    @staticmethod
    def repair(name: str) -> Fix:
        return Fix("verify", "--repair", name)

    @staticmethod
    def offline_warm(name: str) -> Fix:
        return Fix("warm", name, env=(("HF_HUB_OFFLINE", "0"),), note="(on a machine with network)")

    @staticmethod
    def listing() -> Fix:
        return Fix("list")


class LyricsubError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = EXIT_NOT_AVAILABLE
    code = "error"  # stable machine-readable code used in JSON output
    fix: Fix | None = None

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None) -> None:
        from .core.text import printable, redact

        # One line, no terminal escapes, no secrets, whatever a value from outside contained.
        self.message = printable(redact(message))
        self.model = printable(model) if model is not None else None
        self.hint = printable(redact(hint)) if hint is not None else None
        self.fix = hint if isinstance(hint, Fix) else None  # the same fix as data, where it was given as data
        super().__init__(self.message)

    def __str__(self) -> str:
        text = f"{self.model}: {self.message}" if self.model else self.message
        return f"{text} (run: {self.hint})" if self.hint else text

    def with_hint(self, hint: str) -> LyricsubError:
        """The same error (class, message, model, exit code) with another fix: the caller knows better what to run
        again (lock for a model lock is filling, warm rather than load for warm's own --device)."""
        from .core.text import printable, redact

        clone = type(self).__new__(type(self), *self.args)  # not __init__: subclasses take other keywords
        clone.__dict__.update(self.__dict__)
        clone.hint = printable(redact(hint))
        clone.fix = hint if isinstance(hint, Fix) else None
        return clone


class UsageError(LyricsubError, ValueError):
    """Bad arguments: an unknown model or set, conflicting options."""

    exit_code = EXIT_USAGE
    code = "usage"


class IndexFileError(UsageError):
    """model_index.yaml cannot be read or breaks the format; names file, line and field."""

    code = "index"

    def __init__(self, message: str, *, path: str, line: int | None = None, field: str | None = None) -> None:
        where = f"{path}:{line}" if line else path
        if field:
            where += f" [{field}]"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = path, line, field


class UnpinnedModelError(UsageError):
    """The index lacks what a command needs (a commit or a file list)."""

    code = "unpinned"


class ModelNotAvailableError(LyricsubError, FileNotFoundError):
    """The model is missing or partial in the cache."""

    code = "not_available"

    def __init__(self, message: str, *, model: str, status: str, hint: str | None = None) -> None:
        super().__init__(message, model=model, hint=hint)
        self.status = status


class IntegrityError(ModelNotAvailableError):
    """A cached file does not match its pinned hash; it is never handed out."""

    code = "corrupt"


class HubError(LyricsubError, ConnectionError):
    """The Hub answered with an error, or could not be reached."""

    exit_code = EXIT_NETWORK
    code = "hub"


class HubUnreachableError(HubError):
    code = "unreachable"


class ProxyRouteError(HubUnreachableError):
    """The proxy refused the credentials, cannot be reached, or cannot reach the Hub: named with its variable."""

    code = "proxy"


class UntrustedCertificateError(HubUnreachableError):
    """TLS verification failed (a private CA not configured), or a CA variable names no file."""

    code = "certificate"


class RemoteNotFoundError(HubError, LookupError):
    """The repo, revision or file does not exist on the Hub."""

    code = "not_found"


class AccessDeniedError(HubError, PermissionError):
    """A gated or private repo, with no token or a token without access."""

    code = "access_denied"


class OfflineError(ModelNotAvailableError):
    """Offline mode is on and the model is not (fully) in the cache."""

    code = "offline"


class DiskSpaceError(LyricsubError, OSError):
    """Not enough free space before or during a download."""

    exit_code = EXIT_DISK
    code = "disk_space"


class LocalStorageError(LyricsubError, OSError):
    """This machine refused a write into the cache or the state folder (permissions, a read-only filesystem,
    no file locks): a local problem with the local-storage exit code, never a Hub error."""

    exit_code = EXIT_DISK
    code = "local_storage"


class LockUnsupportedError(LocalStorageError):
    """The cache's filesystem cannot take file locks (flock), so concurrent downloads could not exclude each other."""

    code = "no_flock"


def local_error(exc: BaseException, *, model: str | None = None, file: str | None = None, cache_dir: object = None,
                state_dir: object = None, removing: bool = False, again: tuple[str, ...] = ()) -> LyricsubError | None:
    """The one line for an OSError raised by the local disk (None for anything else): which folder, what to do.

    Permission and read-only errors say whose folder it is and the three ways out (the group owner, a cache of
    one's own, the folder as a read-only site cache); a full disk says to free space. Both exit 4. `again` is the
    command that wrote (default `warm MODEL`), so an import is told to import again, not to download.
    """
    import errno as _errno
    import os

    if isinstance(exc, LyricsubError) or not isinstance(exc, OSError):
        return None
    if exc.errno in (_errno.ENOSPC, _errno.EDQUOT, _errno.EFBIG):
        written = file or exc.filename
        where = f" while writing {written}" if written else ""
        return DiskSpaceError(f"the disk filled up{where}; the bytes already written are kept for resume",
                              model=model, hint=Fix("warm", *([model] if model else []), before="free space, then "))
    if exc.errno not in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        return None
    path = os.fsdecode(exc.filename) if exc.filename is not None else None
    why = exc.strerror or os.strerror(exc.errno)
    state = os.fspath(state_dir) if state_dir is not None else None  # type: ignore[call-overload]
    cache = os.fspath(cache_dir) if cache_dir is not None else None  # type: ignore[call-overload]
    if state and path and _under(path, state):
        return LocalStorageError(f"cannot write the state folder {state} ({path}: {why})", model=model,
                                 hint=_again(model, ("LYRICSUB_STATE_DIR", "<a folder of your own>")))
    where = f"cannot write {path}: {why}" if path else f"cannot write the cache: {why}"
    if cache is None or (path and not _under(path, cache)):  # a file elsewhere (the index `lock` rewrites)
        return LocalStorageError(where, model=model)
    if removing:
        owner = "it is mounted read-only" if exc.errno == _errno.EROFS else "ask its group owner for write access"
        return LocalStorageError(f"{where}; nothing was removed from the cache {cache}: {owner} (README: A cache for "
                                 "a team)", model=model, hint=f"ls -ld {path or cache}")
    verb = again[0] if again else "warm"
    if exc.errno == _errno.EROFS:
        what = f"the cache {cache} is read-only here: its models load from it; {verb} what is missing into a cache of your own"
    else:
        what = (f"the cache {cache} is not writable for you: ask its group owner for write access (README: A cache "
                f"for a team), or {verb} into a cache of your own and read this one as a site cache")
    env = (("HF_HUB_CACHE", "<a folder of your own>"), ("LYRICSUB_SITE_CACHE", cache))
    return LocalStorageError(f"{where}; {what}", model=model,
                             hint=Fix(again[0], *again[1:], env=env) if again else _again(model, *env))


def _under(path: str, folder: str) -> bool:
    import os

    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _again(model: str | None, *env: tuple[str, str]) -> Fix:
    return Fix("warm", *([model] if model else []), env=env)


class DownloadCancelled(LyricsubError):
    """The user cancelled; partial files stay resumable."""

    exit_code = EXIT_CANCELLED
    code = "cancelled"


class LoadError(LyricsubError, RuntimeError):
    """The files are intact but the library could not load or run the model."""

    exit_code = EXIT_LOAD
    code = "load"


class GpuMemoryError(LoadError, MemoryError):
    """The model would not fit in the GPU's free memory (checked before loading, or an OOM while loading)."""

    code = "gpu_memory"


class GpuStackError(LoadError):
    """The machine's GPU stack lacks what a family's library needs (a CUDA library, kernels for this GPU): refused
    before the model is loaded, naming what is missing and the fix."""

    code = "gpu_stack"

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None,
                 lacks: tuple[str, ...] = ()) -> None:
        super().__init__(message, model=model, hint=hint)
        self.lacks = lacks


class PinConflictError(HubError):
    """The Hub contradicts a value the index pins (a size, a commit): the pin stays the authority."""

    code = "pin_conflict"


class HubTimeoutError(HubError, TimeoutError):
    """The Hub or a mirror answered, then sent too little for too long."""

    code = "timeout"


class UnsafeCacheError(LyricsubError, PermissionError):
    """A link leaves the cache, or a file is not ours: the command refuses to touch it."""

    code = "unsafe_cache"


class UnsafeStateError(UsageError, PermissionError):
    """The state folder (verification records) can be written by others, so its records cannot vouch for files."""

    code = "unsafe_state"


class BundleError(LyricsubError):
    """A bundle that cannot be read or does not match the index; nothing of it was placed."""

    code = "bundle"


class BundleFormatError(BundleError, ValueError):
    """Not a bundle at all (not tar, no manifest first, a manifest that breaks the format): exit 2, nothing placed."""

    exit_code = EXIT_USAGE
    code = "bundle_format"
