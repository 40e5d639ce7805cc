"""Helpers for scripts/bench.py: test data, the loopback Hub's repos and index, measured child processes,
and the facts about the machine that go into docs/benchmarks.md.

Nothing here imports huggingface_hub: bench.py sets the HF_* variables first.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
WORK = ROOT / ".bench" / f"run-{os.getpid()}"  # everything the run writes; removed at the end
PY = sys.executable
MIB = 1 << 20
GIB = 1 << 30


def isolate() -> None:
    """Set what huggingface_hub reads at import, for this process and every child: no Xet, telemetry or bars,
    an HF_HOME and state folder of our own. Children write bytecode under WORK (this machine sets
    PYTHONDONTWRITEBYTECODE, which would make every fresh process compile lyricsub_hub from source while
    site-packages has its .pyc: neither side pays for compiling, as with an installed wheel)."""
    os.environ.update({
        "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYANNOTE_METRICS_ENABLED": "false", "HF_HOME": str(WORK / "hf"), "LYRICSUB_STATE_DIR": str(WORK / "state"),
        "PYTHONPYCACHEPREFIX": str(WORK / "pycache"),
    })
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT",
                "LYRICSUB_MODEL_INDEX", "LYRICSUB_MAX_RATE", "HF_HUB_ENABLE_HF_TRANSFER", "PYTHONDONTWRITEBYTECODE"):
        os.environ.pop(var, None)


def child_env(**extra: object) -> dict[str, str]:
    return {**os.environ, **{k: str(v) for k, v in extra.items()}}


def interleave(calls: dict, repeats: int, loops: dict[str, int] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each callable, one round of each per repeat, so drift hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            n = (loops or {}).get(key, 1)
            started = time.perf_counter()
            for _ in range(n):
                call()
            out[key].append((time.perf_counter() - started) / n)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


def mib(n: float) -> str:
    return f"{n / MIB:.0f} MiB" if n >= 10 * MIB else f"{n / MIB:.1f} MiB"


def size_label(n: int) -> str:
    return f"{n // (1 << 30)} GiB" if n >= 1 << 30 and n % (1 << 30) == 0 else f"{n // MIB} MiB"


# --------------------------------------------------------------------------- data

def random_file(path: Path, size: int, chunk: int = 16 * MIB) -> Path:
    """Incompressible bytes, written in chunks so memory stays small."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size == size:
        return path
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(chunk, left)
            fh.write(os.urandom(n))
            left -= n
    return path


def blob(size: int, i: int = 0) -> Path:
    """Random test data, shared between figures by size and number (one 1 GiB file serves figures 4 and 6)."""
    return random_file(WORK / "data" / f"r{size}-{i}.bin", size)


def read_through(paths: list[Path]) -> None:
    """Read files once so that later reads come from the page cache."""
    buf = bytearray(4 * MIB)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- hub + index

@dataclass(frozen=True)
class HubModel:
    name: str  # index name, family:variant
    repo: str
    commit: str
    files: dict[str, tuple[int, str]]  # file -> (size, sha256)

    def url(self, endpoint: str, fname: str) -> str:
        return f"{endpoint}/{self.repo}/resolve/{self.commit}/{fname}"

    @property
    def total(self) -> int:
        return sum(size for size, _ in self.files.values())


def publish(hub, name: str, repo: str, files: dict) -> HubModel:
    """Commit files (bytes or Path) on the test Hub; sizes and sha256 come from the Hub's own bookkeeping."""
    commit = hub.add_repo(repo, files)
    info = {f: hub.file_info(repo, f, commit) for f in (files if isinstance(files, dict) else {})}
    if not info:  # a folder was given
        from lyricsub_hub.testing.hub_faults import collect_files

        info = {f: hub.file_info(repo, f, commit) for f in collect_files(files)}
    return HubModel(name, repo, commit, {f: (i["size"], i["sha256"]) for f, i in info.items()})


def spec(m: HubModel):
    """The index entry of a published model (family from the name's prefix)."""
    from lyricsub_hub.index import FileSpec, ModelSpec

    files = tuple(FileSpec(f, size, sha) for f, (size, sha) in m.files.items())
    return ModelSpec(m.name, m.name.split(":", 1)[0], m.repo, m.commit, files)


def write_index(path: Path, models: list, sets: dict[str, list[str]] | None = None) -> Path:
    """A pinned index, as `lyricsub-hub lock` would write it, through the package's one index writer
    (lyricsub_hub.index.write). models: HubModel (published here) or ModelSpec (e.g. the shipped index's)."""
    from lyricsub_hub.index.write import write_index as write

    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, [spec(m) if isinstance(m, HubModel) else m for m in models], sets)


# --------------------------------------------------------------------------- child processes

@dataclass
class Child:
    rc: int
    seconds: float  # wall time seen by the parent, start to exit
    maxrss: int  # peak resident set of that one process, bytes (wait4)
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system CPU seconds of that one process (wait4)

    def json(self) -> dict:
        if self.rc != 0:
            raise RuntimeError(f"child failed (exit {self.rc}): {self.stderr.strip()[-2000:]}")
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_child(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> Child:
    """Run a command, timing it and reading its own peak RSS from wait4 (not the max over all children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(proc.returncode, seconds, usage.ru_maxrss * 1024, out.read().decode(errors="replace"),
                     err.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime)


def py_child(script_args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> Child:
    return run_child([sys.executable, str(SCRIPTS / "bench_child.py"), *script_args], env, timeout)


def compile_bytecode() -> None:
    """One child that compiles every module of lyricsub_hub and imports what the measured children import from
    huggingface_hub, into the pycache prefix, so none of them compiles anything."""
    code = ("import compileall, pathlib, lyricsub_hub\n"
            "assert compileall.compile_dir(pathlib.Path(lyricsub_hub.__file__).parent, quiet=1)\n"
            "import lyricsub_hub.cli, lyricsub_hub.cli.cache_cmds, lyricsub_hub.cli.warm_cmds, lyricsub_hub.manager\n"
            "import lyricsub_hub.download, lyricsub_hub.cache.hashing, lyricsub_hub.families.loading\n"
            "from huggingface_hub import snapshot_download, hf_hub_download, get_hf_file_metadata")
    child = run_child([PY, "-c", code], child_env())
    if child.rc != 0:
        raise RuntimeError(child.stderr)


def importtime_total(stderr: str) -> tuple[int, dict[str, int]]:
    """Sum of 'self' microseconds of every import, and the cumulative time of each top-level import."""
    total, top = 0, {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            total += int(m.group(1))
            if len(m.group(3)) == 1:
                top[m.group(4)] = int(m.group(2))
    return total, top


# --------------------------------------------------------------------------- machine facts

@dataclass
class Machine:
    cpu: str
    cores: int
    library: str
    ram: str
    os: str
    python: str
    hub: str
    torch: str
    date: str
    command: str
    notes: list[str] = field(default_factory=list)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(argv: list[str]) -> Machine:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kb / (1 << 20):.1f} GiB"
    except (OSError, AttributeError):
        pass
    osname = platform.platform()
    try:
        pretty = re.search(r'PRETTY_NAME="([^"]+)"', Path("/etc/os-release").read_text()).group(1)
        osname = f"{pretty}, Linux {platform.release()}"
    except (OSError, AttributeError):
        pass
    exe = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable
    return Machine(cpu, os.cpu_count() or 1, library_state()[0], ram, osname, platform.python_version(), _version("huggingface_hub"),
                   _version("torch"), datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   " ".join([exe, "scripts/bench.py", *argv]))


@dataclass(frozen=True)
class CpuSample:
    busy: float  # seconds all CPUs of the machine spent busy (user, nice, system, irq, softirq), from /proc/stat
    ours: float  # CPU seconds of this process and its waited-for children
    wall: float


def cpu_sample() -> CpuSample:
    import resource

    busy = 0.0
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
        busy = (ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return CpuSample(busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, time.monotonic())


def other_cores(a: CpuSample, b: CpuSample) -> float:
    """Cores busy on average with work that is not ours (other processes, kernel threads) between two samples."""
    return max(0.0, (b.busy - a.busy) - (b.ours - a.ours)) / max(b.wall - a.wall, 1e-9)


def library_state() -> tuple[str, dict[str, int]]:
    """The commit and what differs from it under lyricsub_hub/ (read-only git), plus each source file's mtime."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "lyricsub_hub").splitlines() if len(line) > 3]
    label = commit + (f" + uncommitted changes in {', '.join(sorted(dirty))}" if dirty else "")
    mtimes = {str(p.relative_to(ROOT)): p.stat().st_mtime_ns for p in sorted((ROOT / "lyricsub_hub").rglob("*.py"))}
    return label, mtimes


def have_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def curl_binary() -> str | None:
    return shutil.which("curl")


def aria2_binary() -> str | None:
    return shutil.which("aria2c")


def console_script(name: str = "lyricsub-hub") -> list[str]:
    """The command as installed beside the running interpreter (.venv/bin/lyricsub-hub), else `python -m`."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [PY, "-m", "lyricsub_hub"]


def mb_s(bytes_per_second: float) -> str:
    """Decimal megabytes per second: the unit of the caps (20M = 20*10^6 bytes/s)."""
    return f"{bytes_per_second / 1e6:.1f} MB/s"


def rotate(keys: list[str], i: int) -> list[str]:
    """The order of repeat i: each key goes first in turn, so drift over a run hits every contender alike."""
    n = i % len(keys)
    return keys[n:] + keys[:n]


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listening socket's queue was full (machine-wide)."""
    try:
        head, values = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()[:2]]
        return int(values[head.index("ListenOverflows")])
    except (OSError, ValueError, IndexError):
        return 0


def deep_listen_queue(depth: int = 128) -> None:
    """The test Hub listens with socketserver's default queue of 5: aria2c opening 20 connections at once (figure
    B) overflows it, the kernel drops the SYNs and each retry waits a second. A queue as deep as a real server's
    keeps that from measuring the harness instead of the tools (a proposal for TestHub itself)."""
    from lyricsub_hub.testing import hub

    hub._Server.request_queue_size = max(depth, hub._Server.request_queue_size)
