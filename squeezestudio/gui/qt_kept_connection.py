"""A Ray connection a dialog keeps between runs (starting Ray takes seconds), reopened when the address changes.

Both Run on cluster… and Find the best model under… hold one; it is made on
the job's thread (connecting blocks) and closed with the dialog.
"""

from __future__ import annotations

from typing import Any, Optional


class KeptConnection:
    """``get(target)``: the open connection if it goes to ``target``, else a new one; ``close()`` ends it."""

    def __init__(self) -> None:
        self.connection: Optional[Any] = None

    def get(self, target: Any) -> Any:
        from squeezestudio.core.cluster.connection import RayConnection  # lazy: Ray is an optional extra

        if self.connection is not None and self.connection.target != target:
            self.close()
        if self.connection is None:
            self.connection = RayConnection(target)
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
