"""ONNX -> trainable torch module, and the ``load_onnx`` loader.

The graph is translated into a SqueezeStudio graph description (see
:mod:`squeezestudio.core.model.graph_spec`) plus a state dict: Conv/Gemm/MatMul/
BatchNormalization become real ``nn.Conv2d``/``nn.Linear``/``nn.BatchNorm2d``
layers with their weights as parameters, so pruning, clustering and Fire
substitution see ordinary layers, and the description doubles as the
model's :class:`ArchitectureSpec` for .sqz files. Weights stored in
``Constant`` nodes are treated exactly like initializers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from squeezestudio.core.errors import ModelLoadError, PreprocessingError, UnsupportedOperatorError
from squeezestudio.core.model.graph_spec.module import build_graph_module
from squeezestudio.core.model.graph_spec.values import Ref
from squeezestudio.core.io.loading.onnx_context import ConversionContext, attributes, describe_node
from squeezestudio.core.io.loading.onnx_folding import (TORCH_DTYPES, UNSIGNED_OUTPUTS, WIDENED_INPUTS,
                                                        constant_value, element_type_name, fold_node,
                                                        supported_array)
from squeezestudio.core.io.loading.onnx_ops import CONVERTERS
from squeezestudio.core.io.loading.onnx_safety import load_onnx_model
from squeezestudio.core.model.handle import ArchitectureSpec, ModelHandle, default_class_names
from squeezestudio.core.model.input_spec import (IMAGENET_MEAN, IMAGENET_STD, NORMALISATION_FLAGS, SIZE_FLAGS,
                                                 InputSpec, apply_preprocess_options, options_from_metadata)
from squeezestudio.core.model.outputs import LOGITS, detect_output_kind, mark_output_kind

__all__ = ["load_onnx", "onnx_to_module", "convert_onnx", "OnnxConversion", "declared_input_dims",
           "META_CLASS_NAMES", "META_INPUT_SPEC"]

META_CLASS_NAMES = "squeezestudio.class_names"
META_INPUT_SPEC = "squeezestudio.input_spec"


@dataclass
class OnnxConversion:
    """The result of translating an ONNX graph: description, weights, and the I/O it found."""

    graph: dict[str, Any]
    state: dict[str, np.ndarray]
    input_name: str
    input_shape: list[Optional[int]]
    output_name: str
    warnings: list[str] = field(default_factory=list)
    layout: str = "nchw"
    final_activation: str = ""

    def build(self) -> nn.Module:
        """The trainable module, weights loaded, in eval mode."""
        module = build_graph_module(self.graph)
        state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in self.state.items()}
        # assign: the fresh copies become the parameters (no second copy of every weight)
        module.load_state_dict(state, strict=True, assign=True)
        return module.eval()


def _probe(module: torch.nn.Module, spec: InputSpec) -> torch.Tensor:
    """The converted module's output on two random images, or on one when the graph fixes its batch at 1."""
    with torch.no_grad():
        try:
            return module(spec.example(2))
        except RuntimeError:  # e.g. a Reshape to a constant [1, C, H, W], as old exporters wrote
            return module(spec.example(1))


def load_onnx(path: "str | os.PathLike[str]", options: Optional[Mapping[str, Any]] = None) -> ModelHandle:
    """Load an ONNX classifier safely and convert it into a trainable module.

    ``options`` are the user's preprocessing options (see
    :mod:`squeezestudio.core.model.input_spec`); ``layout`` among them
    overrides the layout read from the input shape.
    """
    file = Path(path)
    model = load_onnx_model(file)
    try:
        conversion = convert_onnx(model, layout=(options or {}).get("layout") or "auto", strip_final_softmax=True)
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:  # a damaged node or tensor
        raise ModelLoadError(f"{file.name} has a malformed graph the converter cannot read "
                             f"({type(exc).__name__}: {str(exc)[:160]})") from None
    module = conversion.build()
    meta = {p.key: p.value for p in model.metadata_props}
    spec, warnings = _input_spec(conversion.input_shape, meta, conversion.layout, file.name)
    try:
        out = _probe(module, spec)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"the converted model from {file.name} fails on a {_shape_text(spec)} input; "
                             f"its declared input shape may be wrong ({detail})") from exc
    if out.shape[0] == 1:
        warnings.append("the graph fixes its batch size at 1 (a reshape with a constant batch); "
                        "evaluate it with --batch-size 1")
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ModelLoadError(f"{file.name} does not output one row of class scores per image "
                             f"(output shape {list(getattr(out, 'shape', []))})")
    names = _class_names(meta.get(META_CLASS_NAMES), int(out.shape[1]))
    mark_output_kind(module, LOGITS if conversion.final_activation else detect_output_kind(out))
    arch_name = model.graph.name or file.stem
    return ModelHandle(module=module, name=file.stem, input_spec=spec, class_names=names,
                       source_format="onnx", source_path=file,
                       architecture=ArchitectureSpec(kind="graph", name=arch_name, graph=conversion.graph),
                       warnings=conversion.warnings + warnings, final_activation=conversion.final_activation)


def _shape_text(spec: InputSpec) -> str:
    dims = spec.file_shape(1)[1:]
    return "x".join(str(d) for d in dims) + (" (NHWC)" if spec.layout == "nhwc" else "")


def onnx_to_module(model_proto: onnx.ModelProto) -> nn.Module:
    """Convert an (already safely loaded) ONNX model into a trainable torch module."""
    return convert_onnx(model_proto).build()


def convert_onnx(model: onnx.ModelProto, allow_many_inputs: bool = False,
                 keep_all_outputs: bool = False, layout: Optional[str] = None,
                 strip_final_softmax: bool = False) -> OnnxConversion:
    """Translate ``model``; raises :class:`UnsupportedOperatorError` naming every unsupported op.

    A classifier has one input and one output; ``allow_many_inputs`` and
    ``keep_all_outputs`` (used to run ONNX's operator test cases) convert
    graphs with several inputs (the module takes them in order) and return
    a tuple of all outputs. ``layout`` (``"nchw"``/``"nhwc"``, default NCHW)
    says how the image input is laid out; ``"auto"`` takes an input shaped
    ``[N, H, W, 1|3]`` as NHWC. The converted module always takes NCHW: an NHWC graph gets a
    transpose in front. With ``strip_final_softmax`` a final
    Softmax/LogSoftmax over the classes is left out (``final_activation``
    records it) so that the module returns logits.
    """
    graph = model.graph
    consts = _initializers(graph)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 and not allow_many_inputs:
        raise ModelLoadError(f"the ONNX model has {len(inputs)} inputs; an image classifier needs exactly one")
    if not graph.output:
        raise ModelLoadError("the ONNX model has no outputs")
    warnings: list[str] = []
    if len(graph.output) > 1 and not keep_all_outputs:
        warnings.append(f"the model has {len(graph.output)} outputs; using the first ({graph.output[0].name})")
    outputs = [o.name for o in graph.output] if keep_all_outputs else [graph.output[0].name]
    output = outputs[0]
    shapes = _infer_shapes(model)
    final_activation = ""
    if strip_final_softmax and not keep_all_outputs:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        output, final_activation = _without_final_softmax(graph, output, shapes, opset)
        outputs = [output]
    live = _live_nodes(graph, outputs)
    computable = _constant_names(live, consts)  # once: computing it per node made conversion quadratic
    _check_supported([n for n in live if not _all_constant(n, computable)])
    ctx = ConversionContext(model, shapes)
    ctx.consts.update(consts)
    image_dims = _dims(inputs[0].type) if inputs else []
    layout = _layout(image_dims, layout or "nchw") if len(inputs) == 1 else "nchw"
    for value in inputs:
        ctx.values[value.name] = ctx.builder.add_node("placeholder", None, name=ctx.builder.node_name(value.name))
        widened = _check_input_type(value, ctx)
        if widened is not None:  # unsigned 16/32/64-bit: torch computes with them as wider signed ints
            ctx.values[value.name] = ctx.builder.add_node("call_function", "squeezestudio.onnx_cast",
                                                          [ctx.values[value.name], widened], hint=value.name)
        if layout == "nhwc":  # the module takes NCHW; the graph reads NHWC
            ctx.values[value.name] = ctx.builder.add_node("call_function", "torch.permute",
                                                          [ctx.values[value.name], [0, 2, 3, 1]], hint="to_nhwc")
    for node in live:
        if id(node) in ctx.skipped:
            continue
        if node.op_type == "Constant":
            ctx.consts[node.output[0]] = constant_value(node)
        elif not fold_node(ctx, node):
            if node.op_type not in CONVERTERS:
                _check_supported([node])
            CONVERTERS[node.op_type](ctx, node)
    result = tuple(_typed_output(ctx, o) for o in graph.output) if keep_all_outputs else _class_scores(ctx, output)
    ctx.builder.add_node("output", None, [result], name=ctx.builder.node_name("output"))
    image = inputs[0] if inputs else None
    if layout == "nhwc" and len(image_dims) == 4:
        image_dims = [image_dims[0], image_dims[3], image_dims[1], image_dims[2]]
    return OnnxConversion(graph=ctx.builder.to_dict(), state=ctx.state, input_name=image.name if image else "",
                          input_shape=image_dims, output_name=output, warnings=warnings, layout=layout,
                          final_activation=final_activation)


def _layout(dims: list[Optional[int]], requested: str) -> str:
    """``requested``, or for ``"auto"``: ``"nhwc"`` for ``[N, H, W, 1|3]`` inputs, else ``"nchw"``."""
    if requested != "auto":
        if requested == "nhwc" and len(dims) not in (0, 4):
            raise ModelLoadError(f"the model's input has {len(dims)} dimensions, so it cannot be NHWC images")
        return requested
    if len(dims) == 4 and dims[3] in (1, 3) and dims[1] not in (1, 3):
        return "nhwc"
    return "nchw"


def _without_final_softmax(graph: onnx.GraphProto, output: str, shapes: dict[str, list[Optional[int]]],
                           opset: int) -> tuple[str, str]:
    """The value before a final Softmax/LogSoftmax over the class axis, and which one it was."""
    producer = next((n for n in graph.node if output in n.output), None)
    if producer is None or producer.op_type not in ("Softmax", "LogSoftmax") or producer.domain not in ("", "ai.onnx"):
        return output, ""
    axis = int(attributes(producer).get("axis", -1 if opset >= 13 else 1))
    before = shapes.get(producer.input[0]) or []
    rank = len(before) or 2
    if axis not in (1, -1) or (axis == -1 and rank != 2) or (axis == 1 and rank > 2 and not all(
            d == 1 for d in before[2:])):
        return output, ""
    return producer.input[0], "softmax" if producer.op_type == "Softmax" else "log_softmax"


def _check_input_type(value: onnx.ValueInfoProto, ctx: ConversionContext) -> Optional[torch.dtype]:
    """Refuse an input type torch cannot compute with; the wider type for unsigned 16/32/64-bit ones."""
    tensor = value.type.tensor_type if value.type.HasField("tensor_type") else None
    if tensor is not None and tensor.elem_type in WIDENED_INPUTS:
        return WIDENED_INPUTS[tensor.elem_type]
    if tensor is None or tensor.elem_type not in TORCH_DTYPES:
        readers = ctx.consumers.get(value.name, [])
        by = f" (read by {describe_node(readers[0])})" if readers else ""
        kind = element_type_name(tensor.elem_type) if tensor is not None else "not a tensor"
        raise UnsupportedOperatorError(f"the model's input {value.name!r}{by} is of type {kind}, which the "
                                       "converted model cannot compute with")


def _typed_output(ctx: ConversionContext, value: onnx.ValueInfoProto) -> Ref:
    """An output in its declared type where the graph computed it wider (unsigned integers)."""
    ref = ctx.ref(value.name)
    declared = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None
    if declared in UNSIGNED_OUTPUTS:
        return ctx.builder.add_node("call_function", "squeezestudio.onnx_cast", [ref, UNSIGNED_OUTPUTS[declared]],
                                    hint=f"{value.name}_typed")
    return ref


def _class_scores(ctx: ConversionContext, output: str) -> Ref:
    """The output as one row per image: an [N, C, 1, 1] output (a convolutional head, as SqueezeNet
    exports) is flattened to [N, C]."""
    ref = ctx.ref(output)
    shape = ctx.shapes.get(output)
    if output in ctx.consts or (shape is not None and len(shape) != 4):
        return ref
    if shape is not None and shape[2:] != [1, 1]:
        return ref
    target = "torch.flatten" if shape is not None else "squeezestudio.onnx_class_scores"
    return ctx.builder.add_node("call_function", target, [ref, 1] if shape is not None else [ref],
                                hint=f"{output}_scores")


def _initializers(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    if len(graph.sparse_initializer):
        raise ModelLoadError("the ONNX model stores sparse initializers, which are not supported")
    out = {}
    for tensor in graph.initializer:
        try:
            out[tensor.name] = supported_array(numpy_helper.to_array(tensor), f"the initializer {tensor.name!r}")
        except UnsupportedOperatorError as exc:
            reader = next((n for n in graph.node if tensor.name in n.input), None)
            by = f" (read by {describe_node(reader)})" if reader is not None else ""
            raise UnsupportedOperatorError(f"{exc}{by}") from exc
    return out


def _live_nodes(graph: onnx.GraphProto, outputs: list[str]) -> list[onnx.NodeProto]:
    """Nodes the chosen outputs depend on, in graph order (dead branches are not converted)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    needed, stack, live_ids = set(), list(outputs), set()
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producer.get(name)
        if node is not None and id(node) not in live_ids:
            live_ids.add(id(node))
            stack.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in live_ids]


def _constant_names(nodes: list[onnx.NodeProto], consts: dict[str, np.ndarray]) -> set[str]:
    """Values computable before any input arrives (constants and what depends only on them)."""
    known = set(consts)
    for node in nodes:
        if node.op_type == "Constant" or _all_constant(node, known):
            known.update(o for o in node.output if o)
    return known


def _all_constant(node: onnx.NodeProto, known: set[str]) -> bool:
    names = [n for n in node.input if n]
    return bool(names) and all(n in known for n in names)


def _check_supported(nodes: list[onnx.NodeProto]) -> None:
    bad: dict[str, onnx.NodeProto] = {}
    for node in nodes:
        default_domain = node.domain in ("", "ai.onnx")
        if not default_domain or (node.op_type not in CONVERTERS and node.op_type != "Constant"):
            key = node.op_type if default_domain else f"{node.domain}.{node.op_type}"
            bad.setdefault(key, node)
    if bad:
        listed = ", ".join(f"{op} (e.g. {describe_node(n).split(' node ', 1)[1]})" for op, n in sorted(bad.items()))
        raise UnsupportedOperatorError(f"the ONNX model uses operators the converter does not support: {listed}")


def _dims(type_proto: onnx.TypeProto) -> list[Optional[int]]:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return []
    return [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in type_proto.tensor_type.shape.dim]


def declared_input_dims(path: "str | os.PathLike[str]") -> list[Optional[int]]:
    """The image input's dimensions as the file declares them, in file order (None: left open); [] if unknown.

    Reads the graph only (external weights are not read): what the Model
    input dialog needs to say which size a file has when read in another layout.
    """
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - unreadable: the loader says why when it converts the file
        return []
    consts = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in consts]
    return _dims(inputs[0].type) if len(inputs) == 1 else []


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its initializers declared as typed inputs instead of holding data: shape
    inference then does not copy (possibly gigabytes of) weights through protobuf."""
    light = onnx.ModelProto()
    light.CopyFrom(model) if not model.graph.initializer else _copy_structure(model, light)
    return light


def _copy_structure(model: onnx.ModelProto, light: onnx.ModelProto) -> None:
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    declared = {i.name for i in model.graph.input}
    graph.input.extend(model.graph.input)
    for tensor in model.graph.initializer:
        if tensor.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))


def _infer_shapes(model: onnx.ModelProto) -> dict[str, list[Optional[int]]]:
    try:
        inferred = onnx.shape_inference.infer_shapes(_without_weights(model))
    except Exception:  # shapes only refine the conversion; without them we still convert
        inferred = model
    shapes: dict[str, list[Optional[int]]] = {}
    g = inferred.graph
    for info in list(g.value_info) + list(g.input) + list(g.output):
        dims = _dims(info.type)
        if dims or (info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape")):
            shapes[info.name] = dims
    return shapes


def _input_spec(shape: list[Optional[int]], meta: Mapping[str, str], layout: str,
                source: str) -> tuple[InputSpec, list[str]]:
    """The input spec from the (NCHW-ordered) input shape and the file's metadata_props."""
    warnings: list[str] = []
    if shape and len(shape) != 4:
        raise ModelLoadError(f"the model's input has {len(shape)} dimensions; an image classifier takes "
                             "4 (NCHW or NHWC)")
    channels, height, width = (shape[1:] if shape else [None, None, None])
    ours = meta.get(META_INPUT_SPEC)
    if ours:
        try:
            return replace(InputSpec.from_dict(json.loads(ours)), layout=layout), warnings
        except (ValueError, KeyError, TypeError, PreprocessingError):
            warnings.append("the file's SqueezeStudio input metadata is unreadable; using defaults")
    if channels is None:
        channels = 3
        warnings.append("the model does not fix its number of input channels; assuming 3")
    if height is None or width is None:
        height, width = height or 224, width or 224
        warnings.append(f"the model does not fix its input size; using {height}x{width} "
                        f"(set {SIZE_FLAGS} if it expects another)")
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,) * channels, (0.5,) * channels)
    spec = InputSpec(channels=channels, height=height, width=width, mean=mean, std=std, layout=layout)
    options = options_from_metadata(meta)
    if options:
        spec = apply_preprocess_options(spec, {k: v for k, v in options.items() if k != "layout"})
    else:
        warnings.append(f"{source} does not say how its images are preprocessed; using "
                        f"{'ImageNet mean/std' if channels == 3 else 'mean/std 0.5'} on pixels in 0..1 "
                        f"(set {NORMALISATION_FLAGS} if it was trained otherwise)")
    return spec, warnings


def _class_names(meta: Optional[str], count: int) -> list[str]:
    if meta:
        try:
            names = json.loads(meta)
            if isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names):
                return names
        except ValueError:
            pass
    return default_class_names(count)


