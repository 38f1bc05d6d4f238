"""What the reproduction scripts share: run ``squeezestudio compress --recipe`` and check a paper's target.

Each reproduction is a recipe file in resources/recipes/ run by the ordinary
CLI command (so the GUI, the CLI and the scripts do exactly the same thing);
this module only adds the target check, computed from the file the command
wrote and from the original model measured on the same evaluation data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from squeezestudio.cli.main import main as cli_main
from squeezestudio.core.compression.codec import encode_sqz, load_sqz
from squeezestudio.core.compression.pipeline import compress
from squeezestudio.core.compression.recipe import Recipe
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.digits import load_digits_split
from squeezestudio.core.io.loading import load_model
from squeezestudio.core.measure.evaluation import evaluate

ROOT = Path(__file__).resolve().parent.parent


def run_recipe(model: Path, recipe: Path, out: Path) -> int:
    """``squeezestudio compress MODEL --recipe RECIPE --data digits -o OUT``, printed (paths from the
    repository root) and run (absolute paths, so the script works from any folder)."""
    shown = ["compress", str(model.relative_to(ROOT)), "--recipe", str(recipe.relative_to(ROOT)),
             "--data", "digits", "-o", str(out)]
    print("$ squeezestudio " + " ".join(shown), flush=True)
    return cli_main(["compress", str(model), "--recipe", str(recipe), "--data", "digits", "-o", str(out)])


def check_target(model: Path, out: Path, *, min_ratio: float, max_loss: float) -> bool:
    """Print the size ratio against the original's dense .sqz and the top-1 loss on digits:val; True if met."""
    registry = default_registry()
    handle = load_model(model, registry=registry)
    val = load_digits_split("val", PreprocessSpec.from_input_spec(handle.input_spec))
    base_bytes = len(encode_sqz(compress(handle, Recipe(), registry=registry), registry=registry))
    base = evaluate(handle.module, val).top1 * 100
    final = evaluate(load_sqz(out, registry=registry).handle.module, val).top1 * 100
    size = out.stat().st_size
    ratio, loss = base_bytes / size, base - final
    met = ratio >= min_ratio and loss <= max_loss
    print(f"result: {size:,} bytes, {ratio:.1f}x smaller than the original's {base_bytes:,} dense bytes "
          f"({100 * (1 - size / base_bytes):.1f}% fewer) at {loss:+.2f} points top-1 loss on {val.name} "
          f"(target >= {min_ratio:g}x at <= {max_loss:g} point: {'met' if met else 'NOT met'})")
    return met


def reproduce(description: str, model: Path, recipe: Path, default_out: Path, *, min_ratio: float,
              max_loss: float) -> int:
    """The whole script: ``--out``, the recipe run by the CLI, then the target check on the written file."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    code = run_recipe(model, recipe, args.out)
    if code == 0:
        check_target(model, args.out, min_ratio=min_ratio, max_loss=max_loss)
    return code

