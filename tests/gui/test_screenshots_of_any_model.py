"""`squeezestudio screenshot` pictures a model that is not the demo, with its own preprocessing and labels.

The screenshot's last recipe overrides one demo layer; on any other model
that layer does not exist and the window refused the recipe. The override
now goes to the model's largest layer, which is also the one shown selected.
"""

from __future__ import annotations

import argparse

from PIL import Image

from squeezestudio.cli import cmd_screenshot
from squeezestudio.gui.qt_screenshots import SCREENSHOT_RECIPES, for_model, render_screenshots, shown_layer


def test_the_screenshot_takes_the_model_s_preprocessing_and_labels(tmp_path):
    parser = argparse.ArgumentParser()
    cmd_screenshot.add_parser(parser.add_subparsers())
    args = parser.parse_args(["screenshot", "out", "m.onnx", "--data", "d", "--resize", "40,40", "--mean", "0.5",
                              "--labels", "names.txt"])
    assert (args.resize, args.mean, args.labels) == ("40,40", "0.5", "names.txt")


def test_overrides_move_to_the_largest_layer_of_another_model(nhwc_softmax_set):
    from squeezestudio.core.compression.registry import default_registry
    from squeezestudio.core.io.loading import load_model

    module = load_model(nhwc_softmax_set.model, registry=default_registry()).module
    shown = shown_layer(module)
    weights = {name: m.weight.numel() for name, m in module.named_modules() if name == shown}
    assert weights and max(weights.values()) >= 8 * 8 * 9  # the 8x8x3x3 convolution, not the 8x3 head
    last = for_model(SCREENSHOT_RECIPES[-1], shown)
    assert list(last["layers"]) == [shown] and last["layers"][shown] == {"cluster": {"bits": 3}}
    assert for_model(SCREENSHOT_RECIPES[0], shown) is SCREENSHOT_RECIPES[0]  # no overrides: unchanged


def test_screenshots_of_a_third_party_nhwc_softmax_model(qapp, tmp_path, nhwc_softmax_set):
    s = nhwc_softmax_set
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nbird\n")
    from squeezestudio.core.model.labels import read_labels_file

    recipes = (SCREENSHOT_RECIPES[0], SCREENSHOT_RECIPES[-1])
    lines: list[str] = []
    written = render_screenshots(tmp_path / "shots", str(s.model), str(s.folder), recipes=recipes, timeout_s=120,
                                 log=lines.append, options={"preprocess": {"resize": 40, "mean": 0.5, "std": 0.5},
                                                            "class_names": read_labels_file(names)})
    assert [p.name for p in written] == ["main_window.png", "classify_view.png", "graph_view.png"]
    assert lines[0].startswith("original:") and len(lines) == 3  # the original and both recipes were measured
    assert all("bytes, top-1" in line for line in lines[1:])
    with Image.open(written[0]) as img:
        assert img.size[0] >= 1000 and len(img.getcolors(1 << 20) or range(1 << 20)) > 50  # a drawn window
