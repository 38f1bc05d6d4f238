"""Submit one Ray task per point and hand back each result as soon as it finishes.

Ray does the scheduling, the retries and the cancelling; this module only keeps
a window of tasks in flight (``ray.wait`` streams them back in completion
order), turns each task's outcome into a measured point or a failed point with
its reason, and on cancel stops every outstanding task (``ray.cancel``) and
waits until none is left running before raising
:class:`~squeezestudio.core.progress.Cancelled`.

Tasks are submitted with ``max_retries=1`` and ``retry_exceptions=True``: a
worker that dies or a task that raises is retried once, then reported.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from squeezestudio.core.cluster.connection import RayConnection
from squeezestudio.core.cluster.worker_side import PointError, WorkerInfo
from squeezestudio.core.progress import CancelToken, Cancelled, ProgressCallback, report

MAX_RETRIES = 1
POLL_S = 0.2
GRACE_S = 5.0  # after a polite cancel, how long running tasks get before they are killed


@dataclass
class TaskOutcome:
    """What came back for one point: its value, or the reason it failed."""

    index: int
    value: Any = None
    sqz: Optional[bytes] = None
    worker: Optional[WorkerInfo] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def remote_function(conn: RayConnection, fn: Callable[..., Any]) -> Any:
    """``fn`` as a Ray task: retried once on any fault, reserving the target's CPUs per task."""
    return conn.ray.remote(max_retries=MAX_RETRIES, retry_exceptions=True,
                           num_cpus=conn.target.cpus_per_task)(fn)


def failure_reason(exc: BaseException, ray: Any) -> str:
    """One sentence for a task that failed after its retry."""
    errors = ray.exceptions
    if isinstance(exc, errors.RayTaskError):
        cause = getattr(exc, "cause", None) or exc
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[-1] if text else ''}".strip().rstrip(":") + " (after a retry)"
    if isinstance(exc, errors.OutOfMemoryError):
        return "the worker ran out of memory (after a retry)"
    if isinstance(exc, errors.WorkerCrashedError):
        return "the worker process measuring it died, and so did the retry"
    if isinstance(exc, errors.NodeDiedError):
        return "the machine running it left the cluster (after a retry)"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _outcome(index: int, ref: Any, ray: Any) -> TaskOutcome:
    try:
        value, sqz, worker = ray.get(ref)
    except ray.exceptions.RayError as exc:
        return TaskOutcome(index, error=failure_reason(exc, ray))
    if isinstance(value, PointError):
        return TaskOutcome(index, worker=worker, error=value.reason)
    return TaskOutcome(index, value=value, sqz=sqz, worker=worker)


def stream_tasks(conn: RayConnection, submit: Callable[[int], Any], indices: Sequence[int], *,
                 on_outcome: Callable[[TaskOutcome], None], describe: Callable[[int], str] = str,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelToken] = None,
                 done_before: int = 0, total: Optional[int] = None) -> None:
    """Run ``submit(i)`` (which returns an ObjectRef) for every index; ``on_outcome`` as each ends.

    At most twice :meth:`RayConnection.concurrency` tasks are in flight, so a
    cancel has little to stop and the cluster never idles between results.
    ``done_before`` points (resumed from a results file) count towards the
    progress of ``total``.
    """
    ray = conn.ray
    total = total if total is not None else len(indices) + done_before
    queue = deque(indices)
    pending: dict[Any, int] = {}
    window = 2 * conn.concurrency()
    done = done_before
    report(progress, done / max(total, 1), f"{done}/{total} points measured")
    try:
        while queue or pending:
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user")
            while queue and len(pending) < window:
                i = queue.popleft()
                pending[submit(i)] = i
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in ready:
                outcome = _outcome(pending.pop(ref), ref, ray)
                done += 1
                on_outcome(outcome)
                state = "measured" if outcome.ok else "FAILED"
                report(progress, done / max(total, 1), f"{done}/{total} {state}: {describe(outcome.index)}")
    except (Cancelled, KeyboardInterrupt):
        # Cancel, Ctrl+C: nothing may keep running on the cluster (it may not be ours to shut down).
        cancel_outstanding(conn, pending, on_outcome)
        raise


def cancel_outstanding(conn: RayConnection, pending: dict[Any, int],
                       on_outcome: Callable[[TaskOutcome], None]) -> None:
    """Stop every pending task and return only when none is running.

    Queued tasks are dropped and running ones interrupted (``ray.cancel``);
    those still running after :data:`GRACE_S` are killed (``force=True``).
    Points that finished meanwhile are still handed to ``on_outcome``: nothing
    measured is lost.
    """
    ray = conn.ray
    refs = list(pending)
    for ref in refs:
        ray.cancel(ref, force=False)
    _, left = ray.wait(refs, num_returns=len(refs), timeout=GRACE_S) if refs else ([], [])
    for ref in left:
        ray.cancel(ref, force=True)
    if left:
        deadline = time.monotonic() + 30.0
        while left and time.monotonic() < deadline:
            _, left = ray.wait(left, num_returns=len(left), timeout=1.0)
    for ref in refs:
        try:
            value, sqz, worker = ray.get(ref, timeout=0)
        except Exception:  # noqa: BLE001 - cancelled, killed or failed: not a measured point
            continue
        if not isinstance(value, PointError):
            on_outcome(TaskOutcome(pending[ref], value=value, sqz=sqz, worker=worker))
    pending.clear()
