"""``squeezestudio search MODEL --budget-bytes N`` (or ``--max-drop P``): the best model that fits.

Chooses per layer among pruning sparsities, cluster widths and quantization
widths from measured per-layer damage and the codec's exact byte costs,
choosing on a held-out part of ``--train-data`` only; then measures the
chosen recipe on ``--data`` (retrained first with ``--finetune``), prints the
per-layer choice and writes the recipe (and the .sqz with ``-o``). With
``--ray``, the table's cells and the candidate recipes are measured as Ray
tasks (the choices and the final measurement stay here), resumable from the
``.points`` folder beside the recipe.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from squeezestudio.cli.cluster_options import add_cluster_arguments, cluster_target
from squeezestudio.cli.common import add_data_arguments, add_model_arguments, load_data_for, load_model_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="find the most accurate per-layer recipe within a byte budget",
                       description="Search per-layer pruning / clustering / quantization settings for the most "
                                   "accurate model within --budget-bytes (or the smallest within --max-drop).")
    add_model_arguments(p)
    add_data_arguments(p)
    goal = p.add_mutually_exclusive_group(required=True)
    goal.add_argument("--budget-bytes", type=int, metavar="N", help="largest .sqz file size in bytes")
    goal.add_argument("--max-drop", type=float, metavar="P",
                      help="largest top-1 drop in points (on the held-out training images)")
    p.add_argument("--train-data", default="digits:train",
                   help="training data; a held-out part of it is what every choice is made on")
    p.add_argument("--selection-fraction", type=float, default=0.3, help="share of the training data held out")
    p.add_argument("--table", metavar="PATH",
                   help="reuse the per-layer table saved here (measured and saved there if it does not exist)")
    p.add_argument("--finetune", type=int, metavar="EPOCHS", default=0,
                   help="retrain the chosen recipe this many epochs before the final measurement")
    p.add_argument("--lr", type=float, default=5e-4, help="retraining learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-recipe", metavar="PATH", help="where the recipe goes (default: MODEL.search.yaml here)")
    p.add_argument("-o", "--output", help="also write the chosen compressed model (.sqz)")
    add_cluster_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from squeezestudio.cli.terminal_progress import TerminalProgress
    from squeezestudio.core.atomic_write import atomic_write_bytes
    from squeezestudio.core.compression.recipe import save_recipe
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.exports import export
    from squeezestudio.core.search.budget_search import search_budget
    from squeezestudio.core.search.layer_table import table_from_dict, table_to_dict

    registry = default_registry()
    target = cluster_target(args)
    handle = load_model_from_args(args)
    data = load_data_for(handle, args.data, follow_links=args.follow_links)
    train = load_data_for(handle, args.train_data, "loading training data", follow_links=args.follow_links)
    table = None
    if args.table and Path(args.table).is_file():
        table = table_from_dict(json.loads(Path(args.table).read_text(encoding="utf-8")))
    finetune = ({"epochs": args.finetune, "lr": args.lr, "seed": args.seed, "shift_augment": 1}
                if args.finetune else None)
    recipe_path = Path(args.save_recipe) if args.save_recipe else Path(f"{Path(args.model).stem}.search.yaml")
    options: dict[str, Any] = dict(registry=registry, budget_bytes=args.budget_bytes, max_drop=args.max_drop,
                                   report_data=data, table=table, finetune=finetune,
                                   selection_fraction=args.selection_fraction, seed=args.seed,
                                   batch_size=args.batch_size)
    with TerminalProgress("searching") as bar:
        if target is None:
            result = search_budget(handle, train, progress=bar, **options)
        else:
            result = _search_on_ray(target, handle, train, options, recipe_path, bar)
    if args.table and table is None:
        atomic_write_bytes(args.table, json.dumps(table_to_dict(result.table)).encode())
    print("per-layer choice (bytes: change of the .sqz; loss: rise on the held-out training images):")
    for line in result.choice_lines():
        print(f"  {line}")
    sel = result.selected
    print(f"chosen on {int(round(len(train) * args.selection_fraction))} held-out training images: "
          f"{sel.size_bytes:,d} bytes, top-1 {(sel.top1 or 0) * 100:.2f}% "
          f"({len(result.candidates)} recipes measured)")
    final = result.final
    assert final is not None and final.evaluation is not None
    goal = (f"budget {args.budget_bytes:,d} bytes" if args.budget_bytes is not None
            else f"at most {args.max_drop:g} points below the original on held-out images")
    print(f"measured on {data.name}{' after retraining' if finetune else ''}: {final.size_bytes:,d} bytes "
          f"({goal}), top-1 {final.evaluation.top1 * 100:.2f}% (search took {result.seconds:.1f} s)")
    print(f"wrote {recipe_path} ({save_recipe(result.recipe, recipe_path):,d} bytes)")
    if args.output:
        print(f"wrote {args.output} ({export(final.compressed, 'sqz', Path(args.output), registry=registry):,d} bytes)")
    return 0


def _search_on_ray(target: Any, handle: Any, train: Any, options: dict[str, Any], recipe_path: Path,
                   bar: Any) -> Any:
    """The search with its table cells and candidates measured on Ray, resuming from the folder beside the recipe."""
    from squeezestudio.core.cluster.connection import RayConnection
    from squeezestudio.core.measure.point_log import PointLog, log_folder_for
    from squeezestudio.core.cluster.ray_search import RaySearchMeasurer
    from squeezestudio.core.search.budget_search import search_budget

    log = PointLog(log_folder_for(recipe_path))
    with RayConnection(target) as conn:
        measurer = RaySearchMeasurer(conn, log=log)
        result = search_budget(handle, train, measurer=measurer, progress=bar, **options)
    if measurer.resumed:
        print(f"resumed {measurer.resumed} measurement(s) already in {log.folder}")
    return result
