"""`lock`: fill or move pins in the index from the Hub, and say what changed, file by file."""

from __future__ import annotations

from pathlib import Path

from ..index import default_index_path
from .context import Context
from .output import Outcome


def cmd_lock(ctx: Context) -> Outcome:
    from ..pin import pin

    args = ctx.args
    path = Path(args.index) if args.index else default_index_path()
    results = pin(path, args.names, update=args.update, endpoint=args.endpoint, token=None)
    out = Outcome("lock", data={"index": str(path)})
    for res in results:
        out.models.append({"name": res.model, "old_revision": res.old_revision, "revision": res.new_revision,
                           "changed": res.changed, "files": [vars(f) for f in res.files]})
        if not res.changed:
            out.lines.append(f"{res.model}: unchanged at {res.new_revision[:12]}")
            continue
        out.lines.append(f"{res.model}: {(res.old_revision or 'unpinned')[:12]} -> {res.new_revision[:12]}")
        out.lines += [f"  {f.change:<8} {f.name}" + (f"  {(f.old_sha256 or '')[:12]} -> {(f.new_sha256 or '')[:12]}"
                                                    if f.change == "changed" else "")
                      for f in res.files if f.change != "same"]
    return out
