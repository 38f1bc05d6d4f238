"""Where the bundled demo lives: models trained on the digits set, and sample images.

The files are produced by ``scripts/train_demo_models.py`` (seeded); their
validation accuracy is quoted in the README from that script's output.
"""

from __future__ import annotations

from pathlib import Path

import squeezestudio

from squeezestudio.core.errors import ModelLoadError

RESOURCES = Path(squeezestudio.__file__).resolve().parents[1] / "resources"
DEMO_DIR = RESOURCES / "demo"
SAMPLES_DIR = RESOURCES / "samples"

DEMO_MODELS = {
    # name: (file, zoo architecture, kwargs)
    "squeezenet": ("squeezenet_digits.safetensors", "squeezenet_mini"),
    "cnds8": ("cnds8_digits.safetensors", "cnds8_slim"),
    "lenet300_100": ("lenet300_100_digits.safetensors", "lenet300_100"),
}
DEFAULT_DEMO = "squeezenet"
DEMO_DATA = "digits"


def demo_model_path(name: str = DEFAULT_DEMO) -> Path:
    """Path of a bundled demo model; a clear error if the resources are missing."""
    if name not in DEMO_MODELS:
        raise ModelLoadError(f"unknown demo model {name!r}; choose one of {', '.join(DEMO_MODELS)}")
    path = DEMO_DIR / DEMO_MODELS[name][0]
    if not path.is_file():
        raise ModelLoadError(f"the bundled demo model {path} is missing; "
                             "recreate it with: python scripts/train_demo_models.py")
    return path


def sample_images() -> list[Path]:
    """The sample digit images shipped for drag-and-drop."""
    return sorted(SAMPLES_DIR.glob("*.png"))
