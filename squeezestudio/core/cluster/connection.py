"""Connecting to Ray: a local instance started here, or an existing cluster by its address.

Ray is an optional dependency (``pip install squeezestudio[cluster]``), so it
is imported lazily, only when a cluster is asked for; without it the user gets
one sentence saying what to install.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from squeezestudio.core.errors import ClusterError

LOCAL = "local"


def ray_module() -> Any:
    """The ``ray`` package, or a :class:`ClusterError` naming the extra to install."""
    try:
        import ray  # optional dependency: imported only when a cluster is asked for
    except ImportError as exc:
        raise ClusterError("running on a cluster needs Ray; install it with "
                           "pip install 'squeezestudio[cluster]'") from exc
    return ray


@dataclass(frozen=True)
class ClusterTarget:
    """Where to run: ``local`` (a Ray instance started here) or a cluster's address.

    ``workers`` is how many points are measured at once: the CPUs of a local
    instance, or a cap on a cluster's concurrency (None: as many as it has CPUs).
    ``cpus_per_task`` is what each point reserves; its torch uses that many threads.
    """

    address: str = LOCAL
    workers: Optional[int] = None
    cpus_per_task: int = 1

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ClusterError("the Ray address is empty; give 'local' or a cluster's HOST:PORT (or ray://HOST:PORT)")
        if self.workers is not None and self.workers < 1:
            raise ClusterError(f"the number of workers must be at least 1, not {self.workers}")
        if self.cpus_per_task < 1:
            raise ClusterError(f"each task needs at least one CPU, not {self.cpus_per_task}")

    @property
    def is_local(self) -> bool:
        return self.address.strip().lower() == LOCAL


class RayConnection:
    """A connection to Ray, shut down on close only if this object started it.

    When Ray is already initialised in this process (a test fixture, an earlier
    run in the desktop app) it is reused and left running.
    """

    def __init__(self, target: ClusterTarget, *, start_attempts: int = 2) -> None:
        self.target = target
        self.start_attempts = max(1, start_attempts)
        self.ray = ray_module()
        self.started_here = False
        if not self.ray.is_initialized():
            self._init()
            self.started_here = True

    def _start(self) -> None:
        if self.target.is_local:
            self.ray.init(address="local", num_cpus=self.target.workers or os.cpu_count() or 1,
                          include_dashboard=False, log_to_driver=False)
        else:
            self.ray.init(address=self.target.address.strip(), log_to_driver=False)

    def _init(self) -> None:
        # On a busy machine Ray's fixed start-up waits (15 s for its agents, 30 s for the node) can run out:
        # a local start gets more than one try.
        attempts = self.start_attempts if self.target.is_local else 1
        for attempt in range(attempts):
            try:
                self._start()
                return
            except Exception as exc:  # noqa: BLE001 - Ray raises plain Exception for a start-up timeout
                if self.ray.is_initialized():
                    self.ray.shutdown()
                if attempt + 1 < attempts:
                    continue
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                where = "start a local Ray instance" if self.target.is_local else \
                    f"connect to the Ray cluster at {self.target.address!r}"
                raise ClusterError(f"cannot {where} ({first}); start one with 'ray start --head' "
                                   "and pass the address it prints") from exc

    def concurrency(self) -> int:
        """How many points to keep in flight: the workers asked for, else the cluster's CPUs per task."""
        if self.target.workers is not None:
            return self.target.workers
        cpus = float(self.ray.cluster_resources().get("CPU", 1))
        return max(1, int(cpus // self.target.cpus_per_task))

    def close(self) -> None:
        if self.started_here and self.ray.is_initialized():
            self.ray.shutdown()
        self.started_here = False

    def __enter__(self) -> "RayConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
