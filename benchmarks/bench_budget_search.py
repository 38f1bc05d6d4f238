"""The byte-budget search against uniform settings, on the demo SqueezeNet and LeNet-300-100.

For each model: a uniform grid (one pruning sparsity and one cluster width
for every layer, prune x cluster-bits) is measured on the digits validation
split; its Pareto set gives the budgets. At each budget the search
(``squeezestudio search``'s core) chooses per-layer settings on a held-out
part of the TRAINING split and its recipe is then measured on the validation
split, like the grid. Printed side by side: the best grid point within the
budget and the search's point, with wall times; a PNG per model shows both
Pareto sets. The claim checked: at every budget the search's point is no
larger than the budget and at least as accurate as the best grid point that
fits. That best grid point is chosen on the validation split it is reported on
(an oracle); so a second column shows the grid point a user without that
oracle would pick -- the best within the budget on the search's own held-out
training images -- with its validation accuracy, and a second check compares
the search with it.

    python benchmarks/bench_budget_search.py [--models squeezenet,lenet300_100] [--budgets 5] [--png-dir docs]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from squeezestudio.cli.offscreen_plots import save_curves_png
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset
from squeezestudio.core.io.demo_files import demo_model_path
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.measure_recipe import measure_recipe
from squeezestudio.core.measure.sensitivity import compressible_layers
from squeezestudio.core.search.budget_search import search_budget, split_selection
from squeezestudio.core.search.layer_table import measure_layer_table
from squeezestudio.core.search.settings import setting_grid
from squeezestudio.core.session.experiments import pareto_frontier
from squeezestudio.core.compression.registry import default_registry

GRID_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
GRID_BITS = (2, 3, 4, 5, 6)


def uniform_grid(handle, val):
    rows = []
    for s in GRID_SPARSITIES:
        for b in GRID_BITS:
            methods = {"cluster": {"bits": b}}
            if s > 0:
                methods["prune"] = {"sparsity": s}
            m = measure_recipe(handle, Recipe(methods=methods), val, registry=default_registry())
            rows.append((f"prune {s:g} + cluster {b}b", m.size_bytes, m.evaluation.top1))
    return rows


def pick_budgets(frontier, count):
    """Up to ``count`` budgets: grid Pareto sizes spread from the smallest to the largest."""
    sizes = [size for _, size, _ in frontier]
    if len(sizes) <= count:
        return sizes
    step = (len(sizes) - 1) / (count - 1)
    return sorted({sizes[round(i * step)] for i in range(count)})


def run_model(name: str, budgets_wanted: int, png_dir: Path) -> bool:
    handle = load_model(str(demo_model_path(name)), registry=default_registry())
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    val, train = load_dataset("digits", spec), load_dataset("digits:train", spec)
    t0 = time.perf_counter()
    grid = uniform_grid(handle, val)
    grid_s = time.perf_counter() - t0
    frontier = [grid[i] for i in pareto_frontier([(size, top1) for _, size, top1 in grid])]
    budgets = pick_budgets(frontier, budgets_wanted)
    t0 = time.perf_counter()
    _, selection = split_selection(train)
    held_grid = {label: top1 for label, _, top1 in uniform_grid(handle, selection)}  # chosen here, never on val
    table = measure_layer_table(handle, selection, compressible_layers(handle), setting_grid(), registry=default_registry())
    table_s = time.perf_counter() - t0
    print(f"\n{name}: {len(compressible_layers(handle))} layers; uniform grid of {len(grid)} points measured in "
          f"{grid_s:.1f} s; the search's layer table ({sum(len(v) for v in table.entries.values())} settings, "
          f"held-out training images: {len(selection)}) in {table_s:.1f} s")
    print(f"  {'budget B':>10s} | {'best uniform within B (oracle)':30s} {'bytes':>9s} {'top-1':>7s} | "
          f"{'uniform picked on held-out':28s} {'top-1':>7s} | {'search bytes':>12s} {'top-1':>7s} {'time':>6s} | "
          f"ok vs oracle, vs held-out pick")
    searched, all_ok, all_fair = [], True, True
    val_top1 = {label: top1 for label, _, top1 in grid}
    for budget in budgets:
        fitting = [row for row in grid if row[1] <= budget]
        best = max(fitting, key=lambda r: (r[2], -r[1]))
        picked = max(fitting, key=lambda r: (held_grid[r[0]], -r[1]))
        t0 = time.perf_counter()
        result = search_budget(handle, train, budget_bytes=budget, report_data=val, table=table, registry=default_registry())
        took = time.perf_counter() - t0
        final = result.final
        ok = final.size_bytes <= budget and final.evaluation.top1 >= best[2]
        fair = final.size_bytes <= budget and final.evaluation.top1 >= val_top1[picked[0]]
        all_ok &= ok
        all_fair &= fair
        searched.append((final.size_bytes, final.evaluation.top1))
        print(f"  {budget:10,d} | {best[0]:30s} {best[1]:9,d} {best[2] * 100:6.2f}% | "
              f"{picked[0]:28s} {val_top1[picked[0]] * 100:6.2f}% | "
              f"{final.size_bytes:12,d} {final.evaluation.top1 * 100:6.2f}% {took:5.1f}s | "
              f"{'yes' if ok else 'NO'}, {'yes' if fair else 'NO'}")
    print(f"  the search's points dominate or equal the grid's at every budget: {'yes' if all_ok else 'NO'} "
          f"(against the oracle's pick); {'yes' if all_fair else 'NO'} (against the held-out pick)")
    png = png_dir / f"budget_search_{name}.png"
    save_curves_png({"uniform grid (Pareto)": [(s, a) for _, s, a in frontier],
                     "byte-budget search": sorted(searched)}, png,
                    title=f"{name}: top-1 on digits:val against exact .sqz bytes", x_label=".sqz bytes")
    print(f"  wrote {png}")
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="squeezenet,lenet300_100")
    parser.add_argument("--budgets", type=int, default=5)
    parser.add_argument("--png-dir", default="docs")
    args = parser.parse_args()
    results = [run_model(name, args.budgets, Path(args.png_dir)) for name in args.models.split(",")]
    print("\nall models: " + ("the search dominates or equals the uniform grid at every budget" if all(results)
                             else "the search LOST to the uniform grid at some budget"))


if __name__ == "__main__":
    main()
