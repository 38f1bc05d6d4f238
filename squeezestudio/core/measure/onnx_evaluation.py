"""Measure an exported ONNX file itself, in onnxruntime: what a deployment would run.

:class:`OnnxRuntimeModule` wraps an ``InferenceSession`` as a torch module so
the one evaluation loop (:func:`~squeezestudio.core.measure.evaluation.evaluate`)
measures it: the accuracy shown for an int8 export is the file's own, not
the torch model's it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import ExportError
from squeezestudio.core.measure.evaluation import EvalResult, evaluate
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.model.outputs import LOG_PROBABILITIES, PROBABILITIES, mark_output_kind, output_kind_of
from squeezestudio.core.progress import CancelToken, ProgressCallback

OnnxSource = Union[bytes, str, "os.PathLike[str]"]


def onnx_session(source: OnnxSource, *, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session for a file or bytes; ``threads`` 0 lets onnxruntime choose."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    model = source if isinstance(source, bytes) else str(Path(source))
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime cannot open the model ({str(exc).splitlines()[0]})") from exc


class OnnxRuntimeModule(nn.Module):
    """A module whose forward runs an onnxruntime session on float32 NCHW images.

    ``nhwc`` files (channels-last, as converted from TensorFlow) get the
    images transposed; ``output_kind`` says what the file returns, so a file
    ending in Softmax is not softmaxed again by the loss and confidences.
    """

    def __init__(self, source: OnnxSource, *, threads: int = 0, nhwc: bool = False,
                 output_kind: str = "logits") -> None:
        super().__init__()
        self.session = onnx_session(source, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.nhwc = nhwc
        mark_output_kind(self, output_kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 2, 3, 1)
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def file_interface(handle: ModelHandle) -> dict[str, object]:
    """``nhwc`` and ``output_kind`` of the ONNX files written for ``handle`` (they keep the original's interface)."""
    kind = {"softmax": PROBABILITIES, "log_softmax": LOG_PROBABILITIES}.get(handle.final_activation,
                                                                            output_kind_of(handle.module))
    return {"nhwc": handle.input_spec.layout == "nhwc", "output_kind": kind}


def evaluate_onnx(source: OnnxSource, data: ImageDataset, *, batch_size: Optional[int] = None,
                  reference: Optional[Union[nn.Module, torch.Tensor]] = None,
                  handle: Optional[ModelHandle] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> EvalResult:
    """Top-1/top-5/agreement of an ONNX file (or bytes) on ``data``, run by onnxruntime.

    ``handle`` is the model the file was written from: its layout and output
    kind are the file's (see :func:`file_interface`); without it the file is
    taken as NCHW in, logits out.
    """
    module = OnnxRuntimeModule(source, **({} if handle is None else file_interface(handle)))  # type: ignore[arg-type]
    return evaluate(module, data, batch_size=batch_size, reference=reference, progress=progress, cancel=cancel)
