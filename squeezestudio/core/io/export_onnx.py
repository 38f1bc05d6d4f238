"""Export a model handle to ONNX, verified against onnxruntime before it counts.

The file is produced with torch's dynamo exporter (clean graphs: named
weights, folded batch norm, Gemm for linear layers), falling back to the
TorchScript exporter for modules torch.export cannot capture. Before the
file is moved into place it must pass ``onnx.checker`` and give the same
outputs as torch in onnxruntime (batch dimension dynamic), so a written file
is always a working one. Class names and the input spec travel in the
model's metadata, so :func:`load_onnx` reopens it with the right labels.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch

from squeezestudio.core.atomic_write import atomic_write_with
from squeezestudio.core.compression.fake_quant import without_input_quantizers
from squeezestudio.core.errors import ExportError
from squeezestudio.core.io.loading.onnx_import import META_CLASS_NAMES, META_INPUT_SPEC
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.model.float_agreement import agrees
from squeezestudio.core.model.outputs import OriginalOutput

__all__ = ["export_onnx", "TOLERANCE"]

TOLERANCE = 1e-4
_MAX_PROTO_BYTES = 2**31 - 1  # protobuf's limit; classifiers we compress are far smaller


def export_onnx(handle: ModelHandle, path: "str | os.PathLike[str]", *, opset: Optional[int] = None) -> int:
    """Write ``handle``'s model to ``path`` as ONNX; returns the number of bytes written."""
    module = original_interface(handle)
    was_training = module.training
    module.eval()
    try:
        example = _file_example(handle, 2)
        with torch.no_grad():
            expected = module(example)
        proto = _export(module, example, opset)
    finally:
        module.train(was_training)
    if not isinstance(expected, torch.Tensor):
        raise ExportError("the model's output is not a single tensor, so it cannot be exported as a classifier")
    proto.graph.name = proto.graph.name or handle.name
    _set_metadata(proto, handle)
    data = proto.SerializeToString()
    if len(data) > _MAX_PROTO_BYTES:
        raise ExportError("the model is larger than 2 GB, which a single ONNX file cannot hold")
    _verify(data, module, handle)

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return atomic_write_with(path, write)


def original_interface(handle: ModelHandle) -> torch.nn.Module:
    """The handle's module with the file's own input layout and final activation (what is exported).

    Activation fake-quantizers are left out: the float file is the float
    model, and the int8 export puts their grids back as real quantization.
    """
    spec = handle.input_spec
    module = without_input_quantizers(handle.module)
    if spec.layout == "nchw" and not handle.final_activation:
        return module
    return OriginalOutput(module, handle.final_activation, nhwc=spec.layout == "nhwc")


def _file_example(handle: ModelHandle, batch: int) -> torch.Tensor:
    return torch.randn(*handle.input_spec.file_shape(batch))


def _export(module: torch.nn.Module, example: torch.Tensor, opset: Optional[int]) -> onnx.ModelProto:
    errors: list[str] = []
    try:
        return _export_dynamo(module, example, opset)
    except Exception as exc:  # torch.export cannot capture every module; try the older exporter
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    try:
        return _export_torchscript(module, example, opset)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    raise ExportError(f"torch could not export the model to ONNX ({'; '.join(errors)})")


def _export_dynamo(module: torch.nn.Module, example: torch.Tensor, opset: Optional[int]) -> onnx.ModelProto:
    batch = torch.export.Dim("batch")
    dynamic: tuple = ({0: batch},)
    params = list(inspect.signature(module.forward).parameters.values())
    if params and params[0].kind is inspect.Parameter.VAR_POSITIONAL:  # forward(self, *inputs)
        dynamic = (dynamic,)
    kwargs = {} if opset is None else {"opset_version": opset}
    # The exporter logs one warning per torchvision operator it cannot register
    # (torchvision is not a dependency); they say nothing about this model.
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    previous_level = registration_log.level
    registration_log.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (example,), None, dynamo=True, verbose=False,
                                    input_names=["input"], output_names=["logits"],
                                    dynamic_shapes=dynamic, **kwargs)
    registration_log.setLevel(previous_level)
    return program.model_proto


def _export_torchscript(module: torch.nn.Module, example: torch.Tensor, opset: Optional[int]) -> onnx.ModelProto:
    buffer = io.BytesIO()
    kwargs = {"opset_version": opset} if opset is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          **kwargs)
    return onnx.load_from_string(buffer.getvalue())


def _set_metadata(proto: onnx.ModelProto, handle: ModelHandle) -> None:
    entries = {META_CLASS_NAMES: json.dumps(list(handle.class_names)),
               META_INPUT_SPEC: json.dumps(handle.input_spec.to_dict())}
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "SqueezeStudio"


def _verify(data: bytes, module: torch.nn.Module, handle: ModelHandle) -> None:
    """The file must be valid ONNX and match torch in onnxruntime on a batch of a new size."""
    import onnxruntime as ort

    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported ONNX model is invalid ({str(exc).splitlines()[0]})") from exc
    x = _file_example(handle, 3)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = module(x).detach().cpu().numpy()
    finally:
        module.train(was_training)
    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot run the exported model ({str(exc).splitlines()[0]})") from exc
    # Relative to the output scale (at least 1): a deep network with large logits differs from torch by float
    # rounding alone (DenseNet-121 with random weights: 1.5e-3 on logits in the hundreds), and where float32
    # rounding moves torch's own outputs by more, by as much as that (see float_agreement).
    accepted, why = agrees(module, x, torch.from_numpy(expected), torch.from_numpy(got), TOLERANCE)
    if not accepted:
        raise ExportError(f"the exported model's outputs {why}")
