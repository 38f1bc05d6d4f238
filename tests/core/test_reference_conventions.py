"""Numbers computed the way a user's own reference computes them, bit for bit.

Someone checking SqueezeStudio runs onnxruntime on the file with the usual
preprocessing (``np.asarray(img, np.float32) / 255``, then ``(x - mean) / std``)
and takes numpy's ``argmax``. An int8 file turns a one-ulp difference in
the input into another class, and its quantized probabilities tie often, so
both the arithmetic and the tie-breaking must be theirs.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from squeezestudio.core.data.dataset import ImageDataset, PreprocessSpec
from squeezestudio.core.data.images import normalise_tensor, preprocess, prepare_pixels
from squeezestudio.core.measure.eval_tally import ranked_classes
from squeezestudio.core.measure.evaluation import evaluate, predict_topk
from squeezestudio.core.model.outputs import PROBABILITIES, mark_output_kind

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_preprocessing_equals_the_usual_numpy_arithmetic_bit_for_bit():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8), "RGB")
    spec = PreprocessSpec(channels=3, height=40, width=56, mean=MEAN, std=STD)
    theirs = ((np.asarray(image, np.float32) / 255.0 - np.asarray(MEAN, np.float32))
              / np.asarray(STD, np.float32)).transpose(2, 0, 1)
    assert np.array_equal(preprocess(image, spec).numpy(), theirs)
    cached = normalise_tensor(torch.from_numpy(prepare_pixels(image, spec))[None], spec)[0]
    assert np.array_equal(cached.numpy(), theirs)  # the disk cache's path too
    raw = PreprocessSpec(channels=3, height=40, width=56, mean=(0.0,) * 3, std=(1.0,) * 3, pixel_scale=255.0)
    assert np.array_equal(preprocess(image, raw).numpy(), np.asarray(image, np.float32).transpose(2, 0, 1))


def test_tied_scores_rank_in_class_order_as_numpy_argmax():
    scores = torch.tensor([[0.2, 0.4, 0.4, 0.0], [0.5, 0.5, 0.5, 0.5], [0.1, 0.0, 0.3, 0.3]])
    assert ranked_classes(scores, 2).tolist() == [[1, 2], [0, 1], [2, 3]]
    assert ranked_classes(scores, 1)[:, 0].tolist() == np.argmax(scores.numpy(), axis=1).tolist()


class _Quantized(nn.Module):
    """Probabilities in steps of 1/4, as an int8 file's Softmax output comes: many rows tie."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(torch.softmax(x.flatten(1)[:, :4], dim=1) * 4) / 4


def test_evaluation_and_classify_break_ties_like_numpy():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(200, 1, 2, 2, generator=g)
    labels = torch.randint(0, 4, (200,), generator=g)
    model = _Quantized()
    mark_output_kind(model, PROBABILITIES)
    with torch.no_grad():
        out = model(images).numpy()
    assert sum(int((row == row.max()).sum() > 1) for row in out) > 20  # the case at hand: many ties
    expected = float((out.argmax(axis=1) == labels.numpy()).mean())
    data = ImageDataset(images=images, labels=labels, class_names=list("abcd"))
    assert evaluate(model, data, use_runtime=False).top1 == expected
    assert predict_topk(model, images, k=1)[1][:, 0].tolist() == out.argmax(axis=1).tolist()
