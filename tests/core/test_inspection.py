"""The layer table: parameter counts, non-zeros, hand-checked MACs, exports, failure modes."""

from __future__ import annotations

import csv
import io
import json

import torch
from torch import nn

from squeezestudio.core.model.inspection import inspect_model
from squeezestudio.core.model.handle import InputSpec, ModelHandle


def _handle(module: nn.Module, channels: int = 2, size: int = 8) -> ModelHandle:
    spec = InputSpec(channels=channels, height=size, width=size, mean=(0.0,) * channels, std=(1.0,) * channels)
    return ModelHandle(module=module, name="tiny", input_spec=spec, class_names=["a"] * 5,
                       source_format="python")


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1, groups=2)  # 2 -> 4 channels, 8x8
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)  # -> 6 x 4x4
        self.up = nn.ConvTranspose2d(6, 3, 2, stride=2)  # 6 x 4x4 -> 3 x 8x8
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(3 * 16, 5)
        self.temperature = nn.Parameter(torch.ones(1))  # owned by the root module itself

    def forward(self, x):
        x = self.up(torch.relu(self.conv2(self.bn(self.conv1(x)))))
        return self.fc(self.pool(x).flatten(1)) * self.temperature


def test_rows_params_and_hand_checked_macs():
    model = Tiny()
    report = inspect_model(_handle(model))
    rows = {r.name: r for r in report.layers}
    assert list(rows) == ["(model)", "conv1", "bn", "conv2", "up", "fc"]
    assert rows["conv1"].macs == 4 * 8 * 8 * (2 // 2) * 3 * 3
    assert rows["conv2"].macs == 6 * 4 * 4 * 4 * 3 * 3
    assert rows["up"].macs == 6 * 4 * 4 * 3 * 2 * 2  # input elements x out/groups x kernel
    assert rows["fc"].macs == 5 * 48
    assert rows["bn"].macs == 0
    assert rows["(model)"].macs is None  # a custom module with its own parameter: unknown cost
    assert rows["conv1"].params == 4 * 1 * 9 + 4 and rows["conv1"].weight_shape == (4, 1, 3, 3)
    assert rows["fc"].dense_bytes == 4 * (5 * 48 + 5)
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in report.layers) == report.total_params
    assert report.total_dense_bytes == 4 * report.total_params
    assert report.total_macs == sum(r.macs for r in report.layers if r.macs is not None)
    assert report.input_shape == (2, 8, 8)
    assert any("unknown" in w for w in report.warnings)


def test_nonzeros_follow_pruned_weights_and_shared_weights_count_once():
    lin = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        lin.weight[:2] = 0
    model = nn.Sequential(nn.Flatten(), lin, nn.ReLU(), lin)  # the same layer used twice
    report = inspect_model(_handle(model, channels=1, size=2))
    assert [r.name for r in report.layers] == ["1"]
    assert report.layers[0].nonzeros == 8 and report.total_nonzeros == 8
    assert report.layers[0].macs == 2 * 16  # called twice in one forward pass
    assert report.total_params == 16


def test_forward_failure_gives_none_macs_and_a_warning():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(x)  # wrong input size: (1, 2, 8, 8) @ (3, 2) fails

    model = Broken()
    model.train()
    report = inspect_model(_handle(model))
    assert report.total_macs is None and report.layers[0].macs is None
    assert report.total_params == 8
    assert len(report.warnings) == 1 and "MACs not measured" in report.warnings[0]
    assert model.training
    assert "?" in report.to_table()


def test_exports_table_csv_json():
    report = inspect_model(_handle(Tiny()))
    table = report.to_table().splitlines()
    assert table[0].split()[0] == "Layer" and table[-1].startswith("warning: MACs unknown")
    total_line = next(line for line in table if line.startswith("TOTAL"))
    assert f"{report.total_params:,}" in total_line
    conv2_line = next(line for line in table if line.startswith("conv2"))
    assert "3,456" in conv2_line  # thousands separator
    header_end = table[0].index("Params") + len("Params")
    assert conv2_line[:header_end].endswith(f"{report.layers[3].params:,}")  # numbers right-aligned
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert rows[-1]["name"] == "TOTAL" and int(rows[-1]["params"]) == report.total_params
    assert rows[1]["weight_shape"] == "4x1x3x3" and int(rows[1]["macs"]) == 4 * 8 * 8 * 9
    parsed = json.loads(report.to_json())
    assert list(parsed) == ["model", "input_shape", "layers", "totals", "warnings"]
    assert list(parsed["layers"][0]) == ["name", "type", "weight_shape", "params", "nonzeros", "macs",
                                         "dense_bytes"]
    assert parsed["totals"]["params"] == report.total_params
    assert report.rows()[1]["weight_shape"] == [4, 1, 3, 3]


def test_zoo_squeezenet_totals():
    from squeezestudio.core.model.zoo import build_model

    model = build_model("squeezenet1_1", num_classes=10, in_channels=1, input_size=32)
    report = inspect_model(_handle(model, channels=1, size=32))
    assert report.total_params == sum(p.numel() for p in model.parameters())
    assert report.total_macs is not None and report.total_macs > 0
    convs = [r for r in report.layers if r.type == "Conv2d"]
    assert convs and all(r.macs is not None and r.macs > 0 for r in convs)
