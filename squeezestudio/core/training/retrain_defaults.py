"""Retraining after compression: its defaults and its recipe section, written once.

The CLI's ``--finetune/--lr/--distill`` flags, the GUI's Retraining controls
and a hand-written recipe's ``finetune:`` section all mean the same run: the
flags and controls start from :data:`RETRAIN_DEFAULTS` and write the section
with :func:`retrain_section`; a section that leaves a field out gets the same
default when it is read (``measure_recipe.retrain_config``). This module
imports no torch, so the CLI's argument parser can read it instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional


@dataclass(frozen=True)
class RetrainDefaults:
    """Why these values: fine-tuning starts from a trained model, so a smaller step than
    training from scratch (5e-4, Adam); a one-pixel random shift keeps a few epochs on a
    small training set from over-fitting; distillation at temperature 4 weighted 0.7
    (Hinton et al.'s range) when the user switches it on."""

    lr: float = 5e-4
    shift_augment: int = 1
    seed: int = 0
    distill_temperature: float = 4.0
    distill_alpha: float = 0.7


RETRAIN_DEFAULTS = RetrainDefaults()


def retrain_section(epochs: int, *, lr: Optional[float] = None, seed: Optional[int] = None,
                    distill_temperature: Optional[float] = None, distill_alpha: Optional[float] = None,
                    extra: Optional[Mapping[str, Any]] = None) -> Optional[dict[str, Any]]:
    """A recipe's ``finetune`` section (None when ``epochs`` is 0: no retraining).

    Unset values take :data:`RETRAIN_DEFAULTS`; distillation is on when a
    temperature is given. ``extra`` holds other ``TrainConfig`` fields kept
    from a loaded recipe (``fraction``, ``batch_size``...). Every value is
    written out, so the recipe reproduces the run even if a default changes.
    """
    if int(epochs) <= 0:
        return None
    d = RETRAIN_DEFAULTS
    section: dict[str, Any] = {"shift_augment": d.shift_augment, **dict(extra or {})}
    section.update(epochs=int(epochs), lr=float(section.get("lr", d.lr) if lr is None else lr),
                   seed=int(section.get("seed", d.seed) if seed is None else seed))
    section.pop("distill_temperature", None)
    section.pop("distill_alpha", None)
    if distill_temperature is not None:
        section["distill_temperature"] = float(distill_temperature)
        section["distill_alpha"] = float(d.distill_alpha if distill_alpha is None else distill_alpha)
    return section
