"""A .sqz file reproduces the compressed model bit for bit, for every encoding kind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from squeezestudio.core.compression.codec import decode_sqz, encode_sqz, load_sqz, save_sqz
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.errors import CodecError
from squeezestudio.core.model.handle import ArchitectureSpec, InputSpec, ModelHandle
from squeezestudio.core.progress import CancelToken, Cancelled

from test_sqz_cases import CASES, TINY_SPEC, make_cm, CODEC_REGISTRY  # sibling module




def _assert_same_encoding(a: WeightEncoding, b: WeightEncoding) -> None:
    assert (a.shape, a.kind, a.bits, a.entropy_coded) == (b.shape, b.kind, b.bits, b.entropy_coded)
    for attr in ("mask", "values", "symbols", "codebook", "scale", "zero_point"):
        x, y = getattr(a, attr), getattr(b, attr)
        assert (x is None) == (y is None), attr
        if x is not None:
            x, y = np.asarray(x), np.asarray(y)
            assert x.dtype == y.dtype and np.array_equal(x.reshape(-1), y.reshape(-1)), attr
    if a.custom is not None:
        assert b.custom is not None and (a.custom.method, a.custom.meta) == (b.custom.method, b.custom.meta)
        for key, arr in a.custom.arrays.items():
            assert np.array_equal(arr, b.custom.arrays[key]) and arr.dtype == b.custom.arrays[key].dtype


@pytest.mark.parametrize("entropy", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_bit_exact(case: str, entropy: bool) -> None:
    cm = make_cm(case, entropy)
    back = decode_sqz(encode_sqz(cm, registry=CODEC_REGISTRY), registry=CODEC_REGISTRY)
    want, got = cm.handle.module.state_dict(), back.handle.module.state_dict()
    assert list(want) == list(got)
    for key in want:
        assert want[key].dtype == got[key].dtype and torch.equal(want[key], got[key]), key
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(cm.handle.module(x), back.handle.module(x))
    assert set(back.encodings) == set(cm.encodings)
    for name, enc in cm.encodings.items():
        _assert_same_encoding(enc, back.encodings[name])


def test_metadata_and_handle_survive(tmp_path: Path) -> None:
    cm = make_cm("codebook_shared", True)
    path = tmp_path / "model.sqz"
    written = save_sqz(cm, path, registry=CODEC_REGISTRY)
    assert written == os.path.getsize(path) == len(encode_sqz(cm, registry=CODEC_REGISTRY))
    back = load_sqz(path, registry=CODEC_REGISTRY)
    h = back.handle
    assert (h.source_format, h.source_path, h.name) == ("sqz", path, "tiny-codebook_shared")
    assert h.class_names == cm.handle.class_names and h.input_spec == cm.handle.input_spec
    assert h.architecture == TINY_SPEC and not h.module.training
    assert (back.recipe, back.metrics, back.provenance) == (cm.recipe, cm.metrics, cm.provenance)


def test_encoding_is_deterministic() -> None:
    assert encode_sqz(make_cm("masked32", True), registry=CODEC_REGISTRY) == encode_sqz(make_cm("masked32", True), registry=CODEC_REGISTRY)


@pytest.mark.parametrize("case", CASES)
def test_entropy_coding_never_grows_a_file(case: str) -> None:
    assert len(encode_sqz(make_cm(case, True), registry=CODEC_REGISTRY)) <= len(encode_sqz(make_cm(case), registry=CODEC_REGISTRY))


def test_entropy_coding_shrinks_skewed_symbols() -> None:
    """Per-channel 3-bit codebooks of Gaussian weights: Huffman beats 3 bits per symbol."""
    cm_plain, cm_coded = make_cm("codebook_channel"), make_cm("codebook_channel", True)
    from squeezestudio.core.compression.codec import size_report

    plain, coded = size_report(cm_plain, registry=CODEC_REGISTRY), size_report(cm_coded, registry=CODEC_REGISTRY)
    assert coded.total_bytes < plain.total_bytes
    fc_plain = next(r for r in plain.layers if r.name == "fc.weight")
    fc_coded = next(r for r in coded.layers if r.name == "fc.weight")
    assert fc_coded.coded < fc_plain.coded


@pytest.mark.parametrize("entropy", [False, True])
def test_fully_pruned_layer_round_trips(entropy: bool) -> None:
    cm = make_cm("codebook_shared", entropy)
    enc = cm.encodings["fc.weight"]
    enc.mask = np.zeros(enc.numel, dtype=bool)
    enc.symbols = enc.symbols[:0]
    with torch.no_grad():
        cm.handle.module.fc.weight.zero_()
    back = decode_sqz(encode_sqz(cm, registry=CODEC_REGISTRY), registry=CODEC_REGISTRY)
    assert torch.equal(back.handle.module.fc.weight, torch.zeros(10, 256))
    assert back.encodings["fc.weight"].kept == 0


def test_progress_and_cancel() -> None:
    cm = make_cm("masked32")
    seen: list[float] = []
    data = encode_sqz(cm, progress=lambda f, msg="": seen.append(f), registry=CODEC_REGISTRY)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    seen.clear()
    decode_sqz(data, progress=lambda f, msg="": seen.append(f), registry=CODEC_REGISTRY)
    assert seen[-1] == 1.0 and len(seen) >= 3
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        encode_sqz(cm, cancel=token, registry=CODEC_REGISTRY)
    with pytest.raises(Cancelled):
        decode_sqz(data, cancel=token, registry=CODEC_REGISTRY)


def test_real_zoo_architecture_round_trips() -> None:
    """No stand-ins: ``build_module`` of the real zoo rebuilds LeNet-300-100."""
    from squeezestudio.core.model.zoo import build_model

    spec = ArchitectureSpec(kind="zoo", name="lenet300_100", kwargs={"num_classes": 10, "in_channels": 1,
                                                                     "input_size": 8})
    module = build_model("lenet300_100", num_classes=10, in_channels=1, input_size=8).eval()
    w = module.get_parameter("fc1.weight")
    mask = (w.detach().abs() > w.detach().abs().median()).numpy().reshape(-1)
    enc = WeightEncoding(shape=tuple(w.shape), kind="float16", mask=mask,
                         values=w.detach().numpy().reshape(-1)[mask].astype(np.float16), bits=16,
                         entropy_coded=True)
    with torch.no_grad():
        w.copy_(torch.from_numpy(enc.decode()))
    handle = ModelHandle(module=module, name="lenet", input_spec=InputSpec(1, 8, 8, (0.5,), (0.5,)),
                         class_names=[str(i) for i in range(10)], source_format="zoo", architecture=spec)
    back = decode_sqz(encode_sqz(CompressedModel(handle=handle, encodings={"fc1.weight": enc}), registry=CODEC_REGISTRY), registry=CODEC_REGISTRY)
    for key, value in module.state_dict().items():
        assert torch.equal(value, back.handle.module.state_dict()[key]), key


def test_weight_that_differs_from_its_encoding_is_refused() -> None:
    cm = make_cm("codebook_shared")
    with torch.no_grad():
        cm.handle.module.fc.weight[0, 0] += 1.0
    with pytest.raises(CodecError, match="differs from its encoding"):
        encode_sqz(cm, registry=CODEC_REGISTRY)


@pytest.mark.parametrize("breakage, message", [
    (lambda enc: setattr(enc, "bits", 2), "does not fit in 2 bits"),
    (lambda enc: setattr(enc, "symbols", enc.symbols[:-1]), "one integer symbol per kept weight"),
    (lambda enc: setattr(enc, "codebook", enc.codebook[:3]), "indexes past the codebook"),
    (lambda enc: setattr(enc, "kind", "float8"), "unknown encoding kind"),
])
def test_inconsistent_encodings_are_refused(breakage, message: str) -> None:
    cm = make_cm("codebook_shared")
    breakage(cm.encodings["conv.weight"])
    with pytest.raises(CodecError, match=message):
        encode_sqz(cm, registry=CODEC_REGISTRY)


def test_model_without_architecture_is_refused() -> None:
    cm = make_cm("dense32")
    cm.handle.architecture = None
    with pytest.raises(CodecError, match="no architecture description"):
        encode_sqz(cm, registry=CODEC_REGISTRY)


def test_encoding_for_unknown_parameter_is_refused() -> None:
    cm = make_cm("dense32")
    cm.encodings["nope.weight"] = cm.encodings["fc.weight"]
    with pytest.raises(CodecError, match="nope.weight"):
        encode_sqz(cm, registry=CODEC_REGISTRY)
