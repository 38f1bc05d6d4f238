"""Forward passes through onnxruntime for evaluation on the CPU.

An eager torch module of a 224x224 classifier runs several times slower on a
CPU than onnxruntime on the same graph (no operator fusion, large batches
thrash memory). Evaluation therefore exports the model it is measuring to
ONNX in memory and runs that, when the data set is large enough to repay the
export. It is the same model: the export is of the module whose weights are
the compressed ones (the .sqz size is of exactly these weights), and the
first batch is checked against torch before onnxruntime's outputs are used;
any failure or mismatch falls back to torch.
"""

from __future__ import annotations

import io
import logging
import warnings
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from squeezestudio.core.measure.export_reuse import shared_templates
from squeezestudio.core.model.float_agreement import agrees
from squeezestudio.core.model.outputs import class_scores

TOLERANCE = 1e-3  # relative to the largest output of the checked batch
_log = logging.getLogger(__name__)

RUNTIME_BATCH_ELEMENTS = 8 * 3 * 224 * 224
"""Input elements of onnxruntime's first batch size: 8 images at 3x224x224 (then 2x and 4x are tried).

Measured with 2 threads on a 2-core machine, in evaluation (each first run
at a size counted): with one other process running, a MobileNetV2-shaped
model ran at 217 images/s at batch 8 and 190-199 at 16 or 32, ResNet-18 at
65-78 at 8 and 71-79 at 16 or 32. The best size depends on the model and on
how busy the cores are, so evaluation starts from the smallest and tries
larger ones while they are faster (see ``_BatchPlan`` in
:mod:`.evaluation`).
"""


def runtime_batch_size(image_elements: int) -> int:
    """onnxruntime's first batch size for ``image_elements``: a power of two near :data:`RUNTIME_BATCH_ELEMENTS`."""
    fits = max(1, RUNTIME_BATCH_ELEMENTS // max(1, int(image_elements)))
    return min(256, 1 << (fits.bit_length() - 1))


def export_in_memory(module: nn.Module, example: torch.Tensor) -> bytes:
    """ONNX bytes of ``module`` with a dynamic batch (TorchScript exporter: the fastest here).

    Without constant folding: onnxruntime folds and fuses the graph itself
    when the session is made (as fast to run, measured on MobileNetV2 and
    ResNet-18), the export takes 0.05 s less, and every weight stays an
    initializer under its own name, which lets the next module of the same
    structure reuse the graph (:mod:`.export_reuse`).
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, do_constant_folding=False)
    return buffer.getvalue()


class RuntimeForward:
    """``forward(x) -> Tensor`` through an onnxruntime session of an exported module."""

    def __init__(self, onnx_bytes: bytes, threads: int) -> None:
        import onnxruntime as ort  # a dependency, imported here so torch-only work does not pay for it

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self._session.run(None, {self._input: array})[0])


def runtime_forward_for(module: nn.Module, batch: torch.Tensor,
                        expected: torch.Tensor) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """An onnxruntime forward for ``module`` that reproduces ``expected`` on ``batch``, or None.

    None when the module cannot be exported or run, or its outputs differ
    from torch's by more than :data:`TOLERANCE` (relative) and more than
    float32 rounding explains (:func:`~squeezestudio.core.model.float_agreement.agrees`).
    Outputs are compared as class scores (``[N, C, 1, 1]`` flattened).
    """
    try:
        example = batch[:1]
        data = shared_templates.onnx_bytes(module, example, lambda: export_in_memory(module, example))
        forward = RuntimeForward(data, torch.get_num_threads())
        got = forward(batch)
    except Exception as exc:  # noqa: BLE001 - any export/runtime failure means "use torch"
        _log.info("onnxruntime evaluation unavailable (%s: %s); using torch", type(exc).__name__, exc)
        return None
    accepted, why = agrees(module, batch, expected.detach().float().cpu(), class_scores(got), TOLERANCE,
                           class_scores)
    if not accepted:
        _log.info("onnxruntime outputs differ from torch (%s); using torch", why)
        return None
    return forward
