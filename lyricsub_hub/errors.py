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


class Hint:
    """The next command for each kind of problem, spelled once."""

    @staticmethod
    def warm(name: str) -> str:
        return f"lyricsub-hub warm {name}"

    @staticmethod
    def lock(name: str) -> str:
        return f"lyricsub-hub lock {name}"

    @staticmethod
    def lock_update(name: str) -> str:
        return f"lyricsub-hub lock --update {name}"

    @staticmethod
    def repair(name: str) -> str:
        return f"lyricsub-hub verify --repair {name}"

    @staticmethod
    def offline_warm(name: str) -> str:
        return f"HF_HUB_OFFLINE=0 lyricsub-hub warm {name}  (on a machine with network)"


class LyricsubError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = EXIT_NOT_AVAILABLE
    code = "error"  # stable machine-readable code used in JSON output

    def __init__(self, message: str, *, model: str | None = None, hint: str | None = None) -> None:
        from .core.text import printable, redact

        # One line, no terminal escapes, no secrets, whatever a value from outside contained.
        self.message = printable(redact(message))
        self.model = printable(model) if model is not None else None
        self.hint = printable(redact(hint)) if hint is not None else None
        super().__init__(self.message)

    def __str__(self) -> str:
        text = f"{self.model}: {self.message}" if self.model else self.message
        return f"{text} (run: {self.hint})" if self.hint else text


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
