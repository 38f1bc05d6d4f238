"""``--ray ADDRESS`` and ``--workers N``: the options that send a command's points to a Ray cluster."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from squeezestudio.core.cluster.connection import ClusterTarget


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (pip install 'squeezestudio[cluster]')")
    group.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="measure the points as Ray tasks: 'local' starts a Ray instance on this machine, "
                            "HOST:PORT (or ray://HOST:PORT) joins a cluster started with 'ray start --head'; "
                            "results are kept in a .points folder beside the output, so a rerun resumes")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="points measured at once (with 'local': the CPUs of the instance; default: all)")


def cluster_target(args: argparse.Namespace) -> "Optional[ClusterTarget]":
    """The cluster the command should use, or None to measure here."""
    if not getattr(args, "ray", None):
        return None
    from squeezestudio.core.cluster.connection import ClusterTarget

    return ClusterTarget(address=args.ray, workers=args.workers)


def print_failures(failed: list) -> int:
    """Print the points that failed after their retry; the exit code (1 if any)."""
    for f in failed:
        print(f"failed: {f.label}: {f.reason}")
    return 1 if failed else 0
