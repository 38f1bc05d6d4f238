"""Reproduce Residual-Squeeze-CNDS (Qassim et al., 2017) on the digits: Fire + bypass, then fine-tune.

A thin wrapper over the CLI: the substitution (every 3x3 convolution but the
first becomes a Fire module with a bypass, started from the SVD of its kernel
and fitted for 200 steps per layer to the original's outputs on training
images) and the fine-tuning are the recipe resources/recipes/fire_bypass_cnds8.yaml, run by

    squeezestudio compress resources/demo/cnds8_digits.safetensors \\
        --recipe resources/recipes/fire_bypass_cnds8.yaml --data digits -o OUT

The epoch kept is the best on a held-out 15% of the training split, never on
the validation split reported. This script then checks the paper's claim
(here: >= 80% fewer bytes, i.e. >= 5x, at <= 1 point top-1 loss) on the file written:

    .venv/bin/python scripts/reproduce_ressqucnds.py [--out out/cnds8_fire_bypass.sqz]
"""

from __future__ import annotations

from reproduce_common import ROOT, reproduce

if __name__ == "__main__":
    raise SystemExit(reproduce(__doc__.splitlines()[0], ROOT / "resources" / "demo" / "cnds8_digits.safetensors",
                               ROOT / "resources" / "recipes" / "fire_bypass_cnds8.yaml",
                               ROOT / "out" / "cnds8_fire_bypass.sqz", min_ratio=5.0, max_loss=1.0))
