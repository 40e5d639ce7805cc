"""`lock`: fill or move pins in the index from the Hub, and say what changed, file by file."""

from __future__ import annotations

from pathlib import Path

from ..index import default_index_path
from .context import Context
from .output import Outcome, lock_lines, lock_row


def cmd_lock(ctx: Context) -> Outcome:
    from ..pin import pin

    args = ctx.args
    path = Path(args.index) if args.index else default_index_path()
    results = pin(path, args.names, update=args.update, endpoint=args.endpoint, token=None)
    out = Outcome("lock", data={"index": str(path)})
    for res in results:
        out.models.append(lock_row(res))
        out.lines += lock_lines(res)
    return out
