"""Size and accuracy of every plugin method on the bundled demo model (digits:val).

For each plugin, one recipe is applied to the demo SqueezeNet with the real
pipeline (``squeezestudio.core.compression.pipeline.compress`` via
``squeezestudio.core.measure.measure_recipe.measure_recipe``); the size is the exact byte
length of the .sqz file and the accuracy is measured on digits:val. Without
the bundled demo weights an initialised model is used (sizes are right,
accuracies are chance level) and the script says so.

Run from the repository root::

    python scripts/plugin_results.py                 # every plugin
    python scripts/plugin_results.py --only structured
    python scripts/plugin_results.py --retrain 0     # no retraining column

Substitution plugins fit each new layer on 256 calibration images from the
training split; the last column retrains for ``--retrain`` epochs on the
training split with the compression kept (measure_recipe's retraining path,
the same as the GUI's and ``compress --finetune``).
"""

from __future__ import annotations

import argparse
import sys

from squeezestudio.core.compression.plugin_folder import register_folder_plugins, repository_plugins_folder
from squeezestudio.core.compression.recipe import recipe_from_dict
from squeezestudio.core.compression.registry import default_registry
from squeezestudio.core.data.dataset import PreprocessSpec
from squeezestudio.core.data.folders import load_dataset, match_classes
from squeezestudio.core.measure.measure_recipe import measure_recipe
from squeezestudio.core.model.handle import ModelHandle

RECIPES: dict[str, dict] = {
    "baseline": {},
    "pow2": {"methods": {"pow2": {"bits": 4}}},
    "lowrank": {"methods": {"lowrank": {"energy": 0.9}}},
    "freshnets": {"methods": {"freshnets": {"compression": 0.25}}},
    "depthwise": {"methods": {"depthwise": {"multiplier": 1}}},
    "shuffle": {"methods": {"shuffle": {"groups": 2}}},
    "structured": {"methods": {"structured": {"ratio": 0.25}}},
}


def demo_handle() -> tuple[ModelHandle, bool]:
    """The bundled demo model, or an initialised SqueezeNet 1.1 (second value False) when it is missing."""
    from squeezestudio.core.io.demo_files import demo_model_path

    try:
        path = demo_model_path()
    except Exception:  # noqa: BLE001 - the demo file is optional here
        path = None
    if path is not None and path.is_file():
        from squeezestudio.core.io.loading import load_model

        return load_model(path, registry=default_registry()), True
    from squeezestudio.core.model.zoo import zoo_handle

    return zoo_handle("squeezenet1_1", num_classes=10, in_channels=1, input_size=32,
                      class_names=[str(i) for i in range(10)]), False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="size/accuracy of each plugin on the demo model")
    parser.add_argument("--only", choices=sorted(RECIPES), action="append")
    parser.add_argument("--retrain", type=int, default=2, help="retraining epochs for the last column (0: none)")
    args = parser.parse_args(argv)
    registry = default_registry()
    register_folder_plugins(registry, repository_plugins_folder())
    for plugin, error in registry.errors:
        print(f"plugin {plugin} failed to load: {error}")
    handle, trained = demo_handle()
    if not trained:
        print("note: no bundled demo weights; using an initialised model (accuracy is chance level)")
    spec = PreprocessSpec.from_input_spec(handle.input_spec)
    data = match_classes(load_dataset("digits:val", spec), handle.class_names)
    train = match_classes(load_dataset("digits:train", spec), handle.class_names)
    calibration = train.images[:256]
    retrain_header = f"{f'after {args.retrain} ep':>11}" if args.retrain else ""
    print(f"{'recipe':<11} {'size (bytes)':>13} {'vs baseline':>11} {'accuracy':>9} {retrain_header}")
    baseline = None
    for name in args.only or list(RECIPES):
        recipe = recipe_from_dict(RECIPES[name])
        m = measure_recipe(handle, recipe, data, reference=handle.module, calibration=calibration, registry=default_registry())
        baseline = baseline or (m.size_bytes if name == "baseline" else None)
        ratio = f"{m.size_bytes / baseline:.3f}x" if baseline else "-"
        acc = m.evaluation.top1 if m.evaluation is not None and m.evaluation.top1 is not None else float("nan")
        retrained = ""
        if args.retrain and name != "baseline":
            tuned = recipe_from_dict({**RECIPES[name], "finetune": {"epochs": args.retrain, "lr": 1e-3}})
            r = measure_recipe(handle, tuned, data, reference=handle.module, calibration=calibration,
                               train_data=train, registry=default_registry())
            retrained = f"{r.evaluation.top1:>11.3f}"
        print(f"{name:<11} {m.size_bytes:>13,} {ratio:>11} {acc:>9.3f} {retrained}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
