"""Export a compressed model as int8 QDQ ONNX that onnxruntime runs with its int8 kernels.

The float ONNX (:func:`export_onnx`, verified against torch) is quantized by
``onnxruntime.quantization.quantize_static`` in QDQ format: 8-bit weights per
output channel, 8-bit activations calibrated on images (min-max, percentile
or entropy). onnxruntime then fuses each ``DequantizeLinear -> Conv/Gemm ->
QuantizeLinear`` into ``QLinearConv``/``QGemm`` (see :func:`int8_kernel_ops`).

On x86 CPUs without VNNI, onnxruntime's uint8 x int8 kernels sum pairs of
products in saturating 16-bit arithmetic: full-range int8 weights cost the
demo 1.4 points of top-1 (11 points on a pruned and clustered model)
against the same graph run unfused. So float weights are quantized to
int8 within +-64 (onnxruntime's ``reduce_range``), where the sums cannot
saturate, and the model's own integers are written as int8 when they fit
that range (any uniform grid of up to 7 bits, symmetric) and otherwise as
uint8 with their own zero points (uint8 x uint8 kernels do not saturate).

Weights the model already holds on a uniform grid of at most 8 bits (the
``affine`` encodings of uniform quantization) are not quantized a second
time: their 8-bit values are the stored integers, their zero points and
scales the stored ones, so the file's ``DequantizeLinear`` gives back
exactly the weights of the ``.sqz`` (:attr:`Int8Export.exact_layers`). The
bias of such a layer is re-quantized with the scale that goes with it
(input scale x weight scale), as onnxruntime requires. Clustered weights
(an arbitrary codebook) are not on a uniform grid, so each of their cluster
values is rounded once onto the per-channel int8 grid; the largest error is
reported per layer (:attr:`Int8Export.rounded_layers`).

Node metadata the float exporter attaches (source locations, about 1 kB per
node) is dropped: it is not part of the model and would otherwise dominate
the size of a small int8 file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from squeezestudio.core.atomic_write import atomic_write_bytes
from squeezestudio.core.compression.compressed_model import CompressedModel
from squeezestudio.core.compression.encoding import WeightEncoding
from squeezestudio.core.compression.fake_quant import input_quantizers
from squeezestudio.core.errors import DataError, ExportError
from squeezestudio.core.io.export_formats import CALIBRATION_METHODS
from squeezestudio.core.io.export_onnx import export_onnx
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report

__all__ = ["CALIBRATION_METHODS", "Int8Export", "activation_grids", "export_onnx_int8", "int8_kernel_ops",
           "quantize_onnx_int8"]

MAX_CALIBRATION_IMAGES = 512
CALIBRATION_BATCH = 32
INT8_WEIGHT_LIMIT = 64  # |w| <= 64: u8 x s8 pair sums stay within int16 on CPUs without VNNI
INT8_KERNELS = ("QLinearConv", "QGemm", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QLinearAdd")


@dataclass
class Int8Export:
    """What an int8 export wrote: its size, the float file's, and how each weight got its int8 values."""

    size_bytes: int
    float_size_bytes: int
    method: str
    calibration_images: int
    exact_layers: list[str] = field(default_factory=list)
    rounded_layers: dict[str, float] = field(default_factory=dict)  # clustered: largest |error| per layer
    quantized_layers: list[str] = field(default_factory=list)  # float weights quantized by onnxruntime
    activation_layers: list[str] = field(default_factory=list)  # inputs on the model's own activation grid
    data: bytes = b""

    @property
    def ratio(self) -> float:
        return self.size_bytes / max(1, self.float_size_bytes)


def _float_onnx_bytes(handle: ModelHandle) -> bytes:
    with tempfile.TemporaryDirectory(prefix="squeezestudio-int8-") as tmp:
        path = Path(tmp) / "float.onnx"
        export_onnx(handle, path)
        return path.read_bytes()


def _strip(proto: onnx.ModelProto, *, names: bool = False) -> None:
    """Drop per-node debug metadata and intermediate shapes (and node names): not part of the model."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
        if names:
            node.name = ""
    del proto.graph.value_info[:]


def _drop_zero_int32_zero_points(proto: onnx.ModelProto) -> None:
    """Bias DequantizeLinear nodes carry int32 zero points that are all 0, the default: leave them out."""
    inits = _initializers(proto)
    dropped: set[str] = set()
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        zp = inits[node.input[2]]
        if zp.data_type == onnx.TensorProto.INT32 and not numpy_helper.to_array(zp).any():
            dropped.add(node.input[2])
            del node.input[2]
    used = {name for node in proto.graph.node for name in node.input}
    keep = [t for t in proto.graph.initializer if t.name not in dropped or t.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a tensor of preprocessed images."""

    def __init__(self, input_name: str, images: np.ndarray) -> None:
        self._batches = [{input_name: images[i:i + CALIBRATION_BATCH]}
                         for i in range(0, len(images), CALIBRATION_BATCH)]
        self._next = 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self._next >= len(self._batches):
            return None
        self._next += 1
        return self._batches[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def _calibration_array(calibration: Union[torch.Tensor, np.ndarray], shape: Sequence[int]) -> np.ndarray:
    images = calibration.detach().cpu().numpy() if isinstance(calibration, torch.Tensor) else np.asarray(calibration)
    images = np.ascontiguousarray(images[:MAX_CALIBRATION_IMAGES], dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise DataError("int8 calibration needs at least one image (a batch of shape N x C x H x W)")
    if tuple(images.shape[1:]) != tuple(shape):
        raise DataError(f"the calibration images have shape {list(images.shape[1:])} but the model expects "
                        f"{list(shape)}; load them with the model's preprocessing")
    return images


def _exact_weights(enc: WeightEncoding) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(8-bit weight, scale per channel, zero point per channel)`` equal to the encoding, or None.

    ``(symbol - zero_point) * scale`` is what both the ``.sqz`` decoder and
    ``DequantizeLinear`` compute. Centred values within +-64 become int8 with
    zero point 0 (onnxruntime's fast uint8 x int8 kernels, no saturation);
    wider ones keep the stored symbols as uint8 with the stored zero points.
    """
    if enc.kind != "affine" or enc.bits > 8 or enc.symbols is None or not enc.shape:
        return None
    assert enc.scale is not None and enc.zero_point is not None
    channels = enc.shape[0]
    scale = np.broadcast_to(np.asarray(enc.scale, dtype=np.float32), (channels,)).copy()
    zp = np.broadcast_to(np.asarray(enc.zero_point, dtype=np.int64), (channels,)).copy()
    sym = np.asarray(enc.symbols, dtype=np.int64)
    if zp.min() < 0 or zp.max() > 255 or (sym.size and (sym.min() < 0 or sym.max() > 255)):
        return None
    centred = sym - zp[enc.channel_of_kept()]
    positions = np.arange(enc.numel) if enc.mask is None else np.flatnonzero(enc.mask)
    if not centred.size or (centred.min() >= -INT8_WEIGHT_LIMIT and centred.max() <= INT8_WEIGHT_LIMIT):
        q = np.zeros(enc.numel, dtype=np.int64)  # a pruned position holds 0
        q[positions] = centred
        return q.astype(np.int8).reshape(enc.shape), scale, np.zeros(channels, dtype=np.int8)
    q = np.repeat(zp, enc.numel // channels)  # a pruned position holds its channel's zero point
    q[positions] = sym
    return q.astype(np.uint8).reshape(enc.shape), scale, zp.astype(np.uint8)


def _initializers(proto: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in proto.graph.initializer}


def _replace(inits: dict[str, onnx.TensorProto], name: str, array: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(array, name))


def _patch_exact_weights(proto: onnx.ModelProto, floats: dict[str, np.ndarray],
                         encodings: dict[str, WeightEncoding], result: Int8Export) -> None:
    """Put the model's own integers and scales into the weight (and bias) DequantizeLinear nodes."""
    inits = _initializers(proto)
    producers = {out: node for node in proto.graph.node for out in node.output}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w_dq = producers.get(node.input[1])
        if w_dq is None or w_dq.op_type != "DequantizeLinear" or w_dq.input[0] not in inits:
            continue
        name = next((n for n in encodings if w_dq.input[0] == f"{n}_quantized"), None)
        if name is None:
            continue
        enc = encodings[name]
        if name not in floats or not np.array_equal(floats[name], enc.decode()):
            continue  # the exporter changed this weight (e.g. folded a norm into it): quantized as a float
        axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
        if tuple(numpy_helper.to_array(inits[w_dq.input[0]]).shape) != tuple(enc.shape) or axis != 0:
            continue
        if enc.kind == "codebook":
            q = numpy_helper.to_array(inits[w_dq.input[0]]).astype(np.float32)
            s = numpy_helper.to_array(inits[w_dq.input[1]]).astype(np.float32)
            z = numpy_helper.to_array(inits[w_dq.input[2]]).astype(np.float32) if len(w_dq.input) > 2 else 0 * s
            shape = (-1,) + (1,) * (q.ndim - 1)
            back = (q - z.reshape(shape)) * s.reshape(shape)
            result.rounded_layers[name] = float(np.max(np.abs(back - floats[name]))) if back.size else 0.0
            continue
        exact = _exact_weights(enc)
        if exact is None:
            continue
        q, scale, zp = exact
        if len(w_dq.input) < 3 or not w_dq.input[2]:
            continue
        _replace(inits, w_dq.input[0], q)
        _replace(inits, w_dq.input[1], scale)
        _replace(inits, w_dq.input[2], zp)
        result.exact_layers.append(name)
        _patch_bias(node, producers, inits, floats, scale)


def _patch_bias(node: onnx.NodeProto, producers: dict[str, onnx.NodeProto], inits: dict[str, onnx.TensorProto],
                floats: dict[str, np.ndarray], w_scale: np.ndarray) -> None:
    """Re-quantize the int32 bias with input scale x (new) weight scale."""
    if len(node.input) < 3 or not node.input[2]:
        return
    b_dq, x_dq = producers.get(node.input[2]), producers.get(node.input[0])
    if b_dq is None or b_dq.op_type != "DequantizeLinear" or x_dq is None or x_dq.op_type != "DequantizeLinear":
        return
    bias = floats.get(b_dq.output[0])
    if bias is None or x_dq.input[1] not in inits:
        return
    bias_scale = (np.float32(numpy_helper.to_array(inits[x_dq.input[1]])) * w_scale).astype(np.float32)
    safe = np.where(bias_scale > 0, bias_scale, np.float32(1.0))
    q = np.clip(np.rint(bias.astype(np.float64) / safe), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
    _replace(inits, b_dq.input[0], q)
    _replace(inits, b_dq.input[1], safe.astype(np.float32))


def activation_grids(module: torch.nn.Module) -> dict[str, tuple[float, int]]:
    """``{layer: (scale, zero point)}`` of the model's own 8-bit input quantizers (``activations``).

    Only 8-bit grids: onnxruntime's activations are uint8, which is exactly
    that grid (0..255 with a zero point). Other widths are left to calibration.
    """
    return {name: (float(q.scale), int(q.zero_point)) for name, q in input_quantizers(module).items() if q.bits == 8}


def _patch_activation_grids(proto: onnx.ModelProto, grids: dict[str, tuple[float, int]],
                            floats: dict[str, np.ndarray], result: Int8Export) -> None:
    """Give each weighted layer's input QuantizeLinear/DequantizeLinear the model's own grid.

    The layer is found by its weight (``{layer}.weight_quantized``). A grid
    initializer shared with an input that wants another grid is left as
    onnxruntime calibrated it. The layer's int32 bias is re-quantized with the
    new input scale (input scale x weight scale, as onnxruntime requires).
    """
    inits = _initializers(proto)
    producers = {out: node for node in proto.graph.node for out in node.output}
    wanted: dict[str, tuple[onnx.NodeProto, tuple[float, int], list[str]]] = {}
    claims: dict[str, set[tuple[float, int]]] = {}
    for node in proto.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        w_dq, x_dq = producers.get(node.input[1]), producers.get(node.input[0])
        if w_dq is None or x_dq is None or x_dq.op_type != "DequantizeLinear" or len(x_dq.input) < 3:
            continue
        layer = next((n for n in grids if w_dq.input[0] == f"{n}.weight_quantized"), None)
        x_q = producers.get(x_dq.input[0])
        if layer is None or x_q is None or x_q.op_type != "QuantizeLinear" or len(x_q.input) < 3:
            continue
        names = sorted({x_q.input[1], x_q.input[2], x_dq.input[1], x_dq.input[2]})
        if not all(n in inits for n in names):
            continue
        wanted[layer] = (node, grids[layer], names)
        for n in names:
            claims.setdefault(n, set()).add(grids[layer])
    for layer, (node, (scale, zero), names) in wanted.items():
        if any(len(claims[n]) > 1 for n in names):
            continue  # one tensor feeds layers that disagree on its grid: keep onnxruntime's
        for name in names:
            dtype = numpy_helper.to_array(inits[name]).dtype
            _replace(inits, name, np.array(scale if dtype.kind == "f" else zero, dtype=dtype))
        w_dq = producers[node.input[1]]
        if w_dq.input[1] in inits:
            _patch_bias(node, producers, inits, floats, numpy_helper.to_array(inits[w_dq.input[1]]).astype(np.float32))
        result.activation_layers.append(layer)


def _quantize_static(float_data: bytes, images: np.ndarray, method: str) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    proto = onnx.load_from_string(float_data)
    input_name = proto.graph.input[0].name
    quant_log = logging.getLogger()
    previous = quant_log.level
    quant_log.setLevel(logging.ERROR)  # onnxruntime logs a pre-processing hint on the root logger
    try:
        with tempfile.TemporaryDirectory(prefix="squeezestudio-int8-") as tmp, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
            warnings.simplefilter("ignore")
            src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
            src.write_bytes(float_data)
            cwd = os.getcwd()
            os.chdir(tmp)  # the calibrators write their augmented model into the working folder
            try:
                quantize_static(str(src), str(dst), _Reader(input_name, images), quant_format=QuantFormat.QDQ,
                                per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8,
                                calibrate_method=calibrate,
                                extra_options={"CalibTensorRangeSymmetric": False, "WeightSymmetric": True})
            finally:
                os.chdir(cwd)
            return onnx.load(str(dst))
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"onnxruntime could not quantize the model to int8 ({str(exc).splitlines()[0]})") from exc
    finally:
        quant_log.setLevel(previous)


def quantize_onnx_int8(float_data: bytes, calibration: Union[torch.Tensor, np.ndarray], *,
                       method: str = "minmax", encodings: Optional[dict[str, WeightEncoding]] = None,
                       grids: Optional[dict[str, tuple[float, int]]] = None,
                       progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelToken] = None) -> Int8Export:
    """Quantize a float ONNX model (bytes) to int8 QDQ; the bytes are in the result's ``data``.

    ``grids`` (:func:`activation_grids`) are the model's own input grids by
    layer: those layers' inputs get them instead of the calibrated ranges.
    """
    if method not in CALIBRATION_METHODS:
        raise ExportError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    proto = onnx.load_from_string(float_data)
    _strip(proto)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][1:]
    images = _calibration_array(calibration, dims)
    floats = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    check(cancel)
    report(progress, 0.1, f"calibrating activations ({method}, {len(images)} images)")
    quantized = _quantize_static(proto.SerializeToString(), images, method)
    check(cancel)
    report(progress, 0.8, "writing the model's own int8 weights")
    result = Int8Export(size_bytes=0, float_size_bytes=len(float_data), method=method,
                        calibration_images=len(images))
    _patch_activation_grids(quantized, grids or {}, floats, result)
    _patch_exact_weights(quantized, floats, encodings or {}, result)
    _drop_zero_int32_zero_points(quantized)
    _strip(quantized, names=True)
    del quantized.metadata_props[:]
    quantized.metadata_props.extend(proto.metadata_props)
    quantized.producer_name = "SqueezeStudio"
    quantized.doc_string = f"int8 QDQ; activations calibrated ({method}) on {len(images)} images"
    result.quantized_layers = sorted(t.name[:-len("_quantized")] for t in quantized.graph.initializer
                                     if t.name.endswith("weight_quantized")
                                     and t.name[:-len("_quantized")] not in result.exact_layers
                                     and t.name[:-len("_quantized")] not in result.rounded_layers)
    data = quantized.SerializeToString()
    _verify(data, images[:4])
    result.data = data
    result.size_bytes = len(data)
    return result


def _verify(data: bytes, images: np.ndarray) -> None:
    import onnxruntime as ort

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        session.run(None, {session.get_inputs()[0].name: images})
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot run the int8 model ({str(exc).splitlines()[0]})") from exc


def in_file_layout(handle: ModelHandle, images: Union[torch.Tensor, np.ndarray]) -> Union[torch.Tensor, np.ndarray]:
    """Images prepared channels-first, in the layout of the files written for ``handle`` (NHWC ones keep it)."""
    if handle.input_spec.layout != "nhwc" or images.ndim != 4:
        return images
    return images.permute(0, 2, 3, 1) if isinstance(images, torch.Tensor) else np.transpose(images, (0, 2, 3, 1))


def export_onnx_int8(model: Union[CompressedModel, ModelHandle], path: "str | os.PathLike[str]",
                     calibration: Union[torch.Tensor, np.ndarray], *, method: str = "minmax",
                     progress: Optional[ProgressCallback] = None,
                     cancel: Optional[CancelToken] = None) -> Int8Export:
    """Write ``model`` as int8 QDQ ONNX to ``path`` atomically (see the module docstring)."""
    handle = model.handle if isinstance(model, CompressedModel) else model
    encodings = model.encodings if isinstance(model, CompressedModel) else {}
    report(progress, 0.0, "exporting the float model")
    float_data = _float_onnx_bytes(handle)
    result = quantize_onnx_int8(float_data, in_file_layout(handle, calibration), method=method, encodings=encodings,
                                grids=activation_grids(handle.module), progress=progress, cancel=cancel)
    result.size_bytes = atomic_write_bytes(path, result.data)
    report(progress, 1.0, "int8 model written")
    return result


def int8_kernel_ops(data: bytes) -> dict[str, int]:
    """The int8 operators onnxruntime runs after its own graph optimisation, with their counts."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="squeezestudio-int8-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    counts: dict[str, int] = {}
    for node in optimized.graph.node:
        if node.op_type in INT8_KERNELS:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts
