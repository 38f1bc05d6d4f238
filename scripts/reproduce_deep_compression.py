"""Reproduce Deep Compression (Han, Mao and Dally, ICLR 2016) on LeNet-300-100 trained on the digits.

A thin wrapper over the CLI: the whole pipeline (prune -> retrain -> cluster
-> retrain, Huffman-coded .sqz) is the staged recipe
resources/recipes/deep_compression_lenet300.yaml, run by

    squeezestudio compress resources/demo/lenet300_100_digits.safetensors \\
        --recipe resources/recipes/deep_compression_lenet300.yaml --data digits -o OUT

which prints the codec's per-layer table and the stage table; each
retraining keeps the epoch best on a held-out 10% of the training split, never
on the validation split reported. This script then checks the paper's target
(>= 40x at <= 1 point top-1 loss) on the file written. Run from the repository root:

    .venv/bin/python scripts/reproduce_deep_compression.py [--out out/lenet300_100_deep_compression.sqz]
"""

from __future__ import annotations

from reproduce_common import ROOT, reproduce

if __name__ == "__main__":
    raise SystemExit(reproduce(__doc__.splitlines()[0], ROOT / "resources" / "demo" / "lenet300_100_digits.safetensors",
                               ROOT / "resources" / "recipes" / "deep_compression_lenet300.yaml",
                               ROOT / "out" / "lenet300_100_deep_compression.sqz", min_ratio=40.0, max_loss=1.0))
