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
    """A module whose forward runs an onnxruntime session on float32 NCHW images."""

    def __init__(self, source: OnnxSource, *, threads: int = 0) -> None:
        super().__init__()
        self.session = onnx_session(source, threads=threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])


def evaluate_onnx(source: OnnxSource, data: ImageDataset, *, batch_size: int = 256,
                  reference: Optional[Union[nn.Module, torch.Tensor]] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> EvalResult:
    """Top-1/top-5/agreement of an ONNX file (or bytes) on ``data``, run by onnxruntime."""
    return evaluate(OnnxRuntimeModule(source), data, batch_size=batch_size, reference=reference,
                    progress=progress, cancel=cancel)
