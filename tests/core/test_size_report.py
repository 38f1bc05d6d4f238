"""The stage table accounts for every byte of the .sqz file."""

from __future__ import annotations

import csv
import io
import struct

import pytest

from squeezestudio.core.compression.codec import encode_sqz, size_report
from safetensors.torch import load as load_safetensors

from squeezestudio.core.compression.codec.size_report import STAGES
from squeezestudio.core.compression.codec.sqz_layout import RAW, STREAMS

from test_sqz_cases import CASES, make_cm, CODEC_REGISTRY  # sibling module



@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_the_report_accounts_for_the_files_own_parts(case: str, entropy: bool) -> None:
    """Read back independently: the layer rows are the streams tensor, the raw tensors the raw one, the rest header."""
    cm = make_cm(case, entropy)
    report = size_report(cm, registry=CODEC_REGISTRY)
    data = encode_sqz(cm, registry=CODEC_REGISTRY)
    tensors = load_safetensors(data)
    (header_length,) = struct.unpack("<Q", data[:8])
    assert sum(row.coded for row in report.layers) == tensors[STREAMS].numel()
    assert report.raw_bytes == tensors[RAW].numel()
    assert report.container_bytes == 8 + header_length
    assert 8 + header_length + tensors[STREAMS].numel() + tensors[RAW].numel() == len(data) == report.total_bytes
    assert report.stage_bytes("coded") == report.total_bytes
    assert report.container_bytes > 0 and report.raw_tensors == 7  # conv/fc bias, BN x4 + counter
    assert report.raw_bytes == 4 * (16 + 10 + 4 * 16) + 8
    if not entropy:  # without entropy coding, the file stores exactly the quantized stage
        assert all(row.coded == row.quantized for row in report.layers)


def test_stages_shrink_for_prune_cluster_and_huffman() -> None:
    report = size_report(make_cm("codebook_shared", True), registry=CODEC_REGISTRY)
    fc = next(row for row in report.layers if row.name == "fc.weight")
    assert fc.dense == 4 * 2560
    assert fc.dense > fc.pruned > fc.quantized > fc.coded
    assert fc.nonzero_pct == pytest.approx(100 * fc.kept / 2560)
    assert fc.value_bytes - 16 * 4 < fc.kept * 4 / 8  # Huffman beats 4-bit indices (codebook: 16 floats)
    assert fc.bits_per_weight("dense") == 32
    assert fc.ratio("coded") == pytest.approx(fc.dense / fc.coded)
    assert report.compression_ratio == pytest.approx(report.dense_bytes / report.total_bytes)
    assert [report.stage_bytes(s) for s in STAGES] == sorted((report.stage_bytes(s) for s in STAGES),
                                                             reverse=True)


def test_dense_float16_halves_the_value_bytes() -> None:
    report = size_report(make_cm("float16"), registry=CODEC_REGISTRY)
    for row in report.layers:
        assert row.pruned == row.dense and row.quantized == row.coded == row.dense // 2
        assert row.index_bytes == 0


def test_table_csv_and_dict_agree() -> None:
    report = size_report(make_cm("affine_channel", True), registry=CODEC_REGISTRY)
    table = report.to_table()
    assert "conv.weight" in table and "fc.weight" in table and "TOTAL" in table
    assert str(report.total_bytes) in table.splitlines()[-1]
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0][0] == "layer" and len(rows) == 1 + len(report.layers) + 3
    assert rows[-1][0] == "TOTAL" and int(rows[-1][7]) == report.total_bytes
    d = report.to_dict()
    assert d["total_bytes"] == report.total_bytes and d["stages"]["coded"] == report.total_bytes
    assert [layer["name"] for layer in d["layers"]] == ["conv.weight", "fc.weight"]
    assert d["layers"][1]["coded"] == report.layers[1].coded
