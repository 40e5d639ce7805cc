"""What a command handler gets: the parsed arguments and, on first use, the manager they describe.

Its own module so that handlers import it from here and the command table in cli/__init__.py imports handlers
by name: nothing imports the package back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..cache import Cache
    from ..index import ModelIndex
    from ..manager import ModelManager


@dataclass
class Context:
    """A command's arguments, and the manager or cache they name, built on first use."""

    args: Any  # argparse.Namespace, or the same fields from the fast parse of path/status
    environ_at_start: dict[str, str] | None = field(default=None, repr=False)  # as the user started us (doctor)
    _manager: Any = field(default=None, repr=False)

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def manager(self) -> ModelManager:
        if self._manager is None:
            from ..manager import ModelManager

            self._manager = ModelManager(self.args.index, self.args.cache_dir, endpoint=self.args.endpoint)
        return self._manager

    def cache_and_index(self) -> tuple[Cache, ModelIndex]:
        """What `path` and `status` need, without the manager and all it brings (a start in a blink)."""
        if self._manager is not None:
            return self._manager.cache, self._manager.index
        from ..cache import Cache
        from ..index import load_index

        cache = Cache.at(self.args.cache_dir)
        return cache, load_index(self.args.index, state_dir=cache.state_dir)
