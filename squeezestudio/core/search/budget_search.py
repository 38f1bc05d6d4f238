"""The byte-budget search: per layer, the pruning sparsity and value storage that fit N bytes best.

1. The training data is split: a held-out *selection* part (every choice is
   made on it) and the rest (retraining, when asked). The data results are
   reported on is never looked at before the final measurement.
2. :func:`measure_layer_table` measures each layer's settings alone: exact
   byte change of the ``.sqz`` and loss on the selection part (reusing a
   sensitivity scan of the same data).
3. :func:`allocate` picks one setting per layer (Lagrangian, then slack
   spending); a few tighter variants and *every* uniform setting predicted to
   fit join it as candidates (so the search can never choose worse, on its own
   held-out images, than one setting for all layers), and all are measured for real
   (:func:`measure_candidates`: compress, evaluate on the selection part,
   exact file length). Candidates over the budget are repaired
   (:func:`shrink_to`) and measured again; the most accurate one that fits
   wins -- a per-layer one only when it beats the best uniform one by more
   than one standard error of the held-out top-1 difference (:func:`_clearly_better`) --
   then spends any slack left (a local repair step, measured again).
4. The winner is retrained if the search was asked to, and measured by
   :func:`measure_recipe` on the report data: that is the point shown.

``--max-drop P`` runs the same over a ladder of budgets and keeps the
smallest recipe whose selection top-1 is within P points of the original's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

import torch

from squeezestudio.core.compression.recipe import recipe_to_dict
from squeezestudio.core.compression.registry import MethodRegistry
from squeezestudio.core.data.dataset import ImageDataset
from squeezestudio.core.errors import DataError
from squeezestudio.core.measure.measure_recipe import Measurement, measure_recipe
from squeezestudio.core.measure.sensitivity import SensitivityResult, compressible_layers
from squeezestudio.core.model.handle import ModelHandle
from squeezestudio.core.progress import CancelToken, ProgressCallback, check, report, scaled
from squeezestudio.core.search.allocation import Choice, allocate, shrink_to, spend_slack
from squeezestudio.core.search.candidates import CandidateResult
from squeezestudio.core.search.layer_table import LayerTable
from squeezestudio.core.search.measurer import SearchMeasurer
from squeezestudio.core.search.settings import LayerSetting, recipe_for, setting_grid

SELECTION_FRACTION = 0.3
UNIFORM_SLACK = 0.05  # uniform settings (the baseline never to lose to) up to 5% over: the additive model errs by 1-4%
FINAL_REPAIRS = 3
TIGHTER = (1.0, 0.97, 0.93)
REPAIR_ROUNDS = 3
DROP_LADDER = 10

MeasureFn = Callable[..., list[CandidateResult]]


@dataclass
class SearchResult:
    """The chosen per-layer settings, their recipe, what was measured on the way, and the final point."""

    choice: Choice
    recipe: Any
    selected: CandidateResult
    budget_bytes: Optional[int]
    max_drop: Optional[float]
    table: LayerTable
    candidates: list[CandidateResult] = field(default_factory=list)
    final: Optional[Measurement] = None
    seconds: float = 0.0

    def choice_lines(self) -> list[str]:
        """``layer: setting (bytes, damage)`` per layer, in model order."""
        lines = []
        for layer, setting in self.choice.items():
            lines.append(f"{layer:32s} {setting.label():26s} {self.table.cost(layer, setting):+9,d} B  "
                         f"loss {self.table.damage(layer, setting):+.4f}")
        return lines


def split_selection(train: ImageDataset, fraction: float = SELECTION_FRACTION,
                    seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """``(fit, selection)``: a seeded random split of the training data (selection gets ``fraction``)."""
    n = len(train)
    if n < 4:
        raise DataError("the search needs training data with at least 4 images (a part is held out for choosing)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = max(2, int(round(n * fraction)))
    return (train.subset(order[k:], name=f"{train.name} (fit)"),
            train.subset(order[:k], name=f"{train.name} (held out)"))


def _label(choice: Choice) -> str:
    kinds = {s.label() for s in choice.values()}
    return f"uniform {kinds.pop()}" if len(kinds) == 1 else "per-layer"


def _candidates_for(table: LayerTable, budget: int, settings: Sequence[LayerSetting]) -> list[Choice]:
    out: list[Choice] = []
    for factor in TIGHTER:
        choice = allocate(table, int(budget * factor))
        if choice is None:  # predicted not to fit: the smallest settings are still worth a real measurement
            choice = _smallest(table)
        if choice not in out:
            out.append(choice)
    uniform = [{layer: s for layer in table.entries} for s in settings
               if all(s in table.entries[layer] or s.is_off for layer in table.entries)]
    fitting = [c for c in uniform if table.predicted_bytes(c) <= budget * (1 + UNIFORM_SLACK)]
    fitting.sort(key=lambda c: sum(table.damage(layer, s) for layer, s in c.items()))
    # All of them, not the few the additive model ranks best: that model cannot see how layers'
    # errors compound, and a real measurement of each is cheap next to the table.
    out += [c for c in fitting if c not in out]
    return out


def _remembering(measure: MeasureFn) -> MeasureFn:
    """``measure``, measuring each (recipe, data) once: the drop ladder and the repairs ask again."""
    seen: dict[tuple[int, str], CandidateResult] = {}

    def remembered(cands: Any, data: ImageDataset, **kw: Any) -> list[CandidateResult]:
        keys = [(id(data), json.dumps(recipe_to_dict(recipe), sort_keys=True)) for _, recipe in cands]
        todo = [i for i, key in enumerate(keys) if key not in seen]
        unique = list(dict.fromkeys(keys[i] for i in todo))
        first = {key: next(i for i in todo if keys[i] == key) for key in unique}
        if unique:
            fresh = measure([cands[first[key]] for key in unique], data, **kw)
            seen.update(zip(unique, fresh))
        return [replace(seen[key], label=label) for key, (label, _) in zip(keys, cands)]
    return remembered


def _best_within(handle: ModelHandle, table: LayerTable, budget: int, choices: list[Choice],
                 selection: ImageDataset, measure: MeasureFn, compact: bool,
                 all_measured: list[CandidateResult], progress: Optional[ProgressCallback],
                 cancel: Optional[CancelToken]) -> Optional[tuple[Choice, CandidateResult]]:
    """Measure the choices, repair the ones over budget, and return the most accurate one that fits."""
    fits: list[tuple[Choice, CandidateResult]] = []
    pending = list(choices)
    for round_ in range(REPAIR_ROUNDS + 1):
        if not pending:
            break
        check(cancel)
        results = measure([(_label(c), recipe_for(c, compact=compact)) for c in pending], selection,
                          progress=scaled(progress, round_ / (REPAIR_ROUNDS + 2), (round_ + 1) / (REPAIR_ROUNDS + 2)),
                          cancel=cancel)
        all_measured.extend(results)
        retry = []
        for choice, result in zip(pending, results):
            if result.size_bytes <= budget:
                fits.append((choice, result))
            else:  # the additive byte model was off: ask for the overshoot back, and measure again
                over = result.size_bytes - budget
                repaired = shrink_to(table, choice, table.predicted_bytes(choice) - over)
                if repaired != choice:
                    retry.append(repaired)
        pending = [c for c in retry if all(c != f[0] for f in fits)]
    if not fits:
        return None
    best = min(fits, key=lambda f: f[1].rank_key())
    uniform = [f for f in fits if _is_uniform(f[0])]
    if uniform and not _is_uniform(best[0]):
        simplest = min(uniform, key=lambda f: f[1].rank_key())
        if not _clearly_better(best[1], simplest[1], len(selection)):
            best = simplest
    # Local repair: spend what the real size left free, and keep it only if it measures better and fits.
    grown = spend_slack(table, best[0], table.predicted_bytes(best[0]) + budget - best[1].size_bytes)
    if grown != best[0]:
        result = measure([(_label(grown), recipe_for(grown, compact=compact))], selection, cancel=cancel)[0]
        all_measured.append(result)
        if result.size_bytes <= budget and result.rank_key() < best[1].rank_key() and (
                not _is_uniform(best[0]) or _clearly_better(result, best[1], len(selection))):
            best = (grown, result)
    return best


def _is_uniform(choice: Choice) -> bool:
    return len(set(choice.values())) == 1


def _clearly_better(a: CandidateResult, b: CandidateResult, images: int) -> bool:
    """``a``'s held-out top-1 beats ``b``'s by more than one standard error of the difference (the 1-SE rule).

    Many per-layer candidates are measured on a few hundred images, so the
    best of them is partly luck (and the held-out part of the training data
    is often data the model was trained on, where candidates barely differ).
    A per-layer recipe replaces the best uniform one only when it is better
    by more than that noise: the simpler choice wins a tie.
    """
    n = max(images, 1)
    pa, pb = a.top1 or 0.0, b.top1 or 0.0
    se = math.sqrt((max(pa * (1.0 - pa), 1.0 / n) + max(pb * (1.0 - pb), 1.0 / n)) / n)
    return pa - pb > se


def search_budget(handle: ModelHandle, train_data: ImageDataset, *, registry: MethodRegistry,
                  budget_bytes: Optional[int] = None,
                  max_drop: Optional[float] = None, report_data: Optional[ImageDataset] = None,
                  settings: Optional[Sequence[LayerSetting]] = None, layers: Optional[Sequence[str]] = None,
                  table: Optional[LayerTable] = None, sensitivity: Optional[SensitivityResult] = None,
                  finetune: Optional[dict[str, Any]] = None, selection_fraction: float = SELECTION_FRACTION,
                  seed: int = 0, batch_size: Optional[int] = None, measurer: Optional[SearchMeasurer] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelToken] = None) -> SearchResult:
    """Find the most accurate per-layer recipe within ``budget_bytes`` (or ``max_drop`` top-1 points).

    ``table`` reuses a layer table measured before on the same selection
    split; ``sensitivity`` a sensitivity scan of it. ``finetune`` (a recipe
    ``finetune`` section) retrains the winner before the final measurement
    on ``report_data``. ``measurer`` is where the table's cells and the
    candidates are measured (default: here; ``core.cluster`` has one that
    farms them out to Ray); the final measurement is always made here.
    """
    if (budget_bytes is None) == (max_drop is None):
        raise DataError("give the search either a byte budget or a largest accuracy drop, not both or neither")
    if budget_bytes is not None and budget_bytes < 1:
        raise DataError(f"the byte budget must be a positive number of bytes, not {budget_bytes}")
    started = time.perf_counter()
    fit, selection = split_selection(train_data, selection_fraction, seed)
    chosen_settings = list(settings) if settings is not None else setting_grid()
    names = list(layers) if layers is not None else compressible_layers(handle)
    compact = set(names) == set(compressible_layers(handle))
    measurer = measurer if measurer is not None else SearchMeasurer()
    if table is None:
        table = measurer.table(handle, selection, names, chosen_settings, registry=registry, sensitivity=sensitivity,
                               batch_size=batch_size, progress=scaled(progress, 0.0, 0.6), cancel=cancel)
    table.compact = compact  # its byte predictions count the recipe text as the candidates will write it

    def measure_all(cands: Any, data: ImageDataset, **kw: Any) -> list[CandidateResult]:
        return measurer.candidates(handle, cands, data, registry=registry, batch_size=batch_size, **kw)
    measure = _remembering(measure_all)
    measured: list[CandidateResult] = []
    if budget_bytes is not None:
        best = _best_within(handle, table, budget_bytes, _candidates_for(table, budget_bytes, chosen_settings),
                            selection, measure, compact, measured, scaled(progress, 0.6, 0.9), cancel)
        if best is None:
            raise DataError(f"no recipe of the search fits in {budget_bytes:,d} bytes; the smallest it can make "
                            f"is about {table.predicted_bytes(_smallest(table)):,d} bytes")
    else:
        best = _best_under_drop(handle, table, float(max_drop or 0.0), chosen_settings, selection, measure,
                                compact, measured, scaled(progress, 0.6, 0.9), cancel)
    choice, selected = best
    recipe = recipe_for(choice, finetune, compact=compact)
    result = SearchResult(choice=choice, recipe=recipe, selected=selected, budget_bytes=budget_bytes,
                          max_drop=max_drop, table=table, candidates=_each_once(measured))
    if report_data is not None:
        for attempt in range(FINAL_REPAIRS + 1):
            check(cancel)
            report(progress, 0.9, "measuring the chosen recipe" + (" after retraining" if finetune else ""))
            result.final = measure_recipe(handle, result.recipe, report_data, registry=registry,
                                          train_data=fit if finetune else None,
                                          reference=handle.module, batch_size=batch_size,
                                          progress=scaled(progress, 0.9, 1.0), cancel=cancel)
            over = 0 if budget_bytes is None else result.final.size_bytes - budget_bytes
            if over <= 0 or attempt == FINAL_REPAIRS:
                break
            # The file carries its measured metrics, whose text can be a few bytes longer than the
            # selection's: only the size is used here, to give those bytes back.
            smaller = shrink_to(table, result.choice, table.predicted_bytes(result.choice) - over)
            if smaller == result.choice:
                break
            result.choice, result.recipe = smaller, recipe_for(smaller, finetune, compact=compact)
    result.seconds = time.perf_counter() - started
    report(progress, 1.0, "search done")
    return result


def _each_once(results: list[CandidateResult]) -> list[CandidateResult]:
    """The measured candidates, each recipe once (a remembered one comes back when asked for again)."""
    seen: set[str] = set()
    out = []
    for r in results:
        key = json.dumps(r.recipe, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _smallest(table: LayerTable) -> Choice:
    return {layer: min(table.settings(layer), key=lambda s: table.cost(layer, s)) for layer in table.entries}


def _best_under_drop(handle: ModelHandle, table: LayerTable, max_drop: float, settings: Sequence[LayerSetting],
                     selection: ImageDataset, measure: MeasureFn, compact: bool,
                     measured: list[CandidateResult], progress: Optional[ProgressCallback],
                     cancel: Optional[CancelToken]) -> tuple[Choice, CandidateResult]:
    """The smallest measured recipe whose selection top-1 is within ``max_drop`` points of the original's."""
    low, high = table.predicted_bytes(_smallest(table)), table.base_bytes
    floor = (table.base_top1 or 0.0) - max_drop / 100.0
    best: Optional[tuple[Choice, CandidateResult]] = None
    for i in range(DROP_LADDER):
        check(cancel)
        budget = int(low * (high / max(low, 1)) ** ((i + 1) / DROP_LADDER))
        found = _best_within(handle, table, budget, _candidates_for(table, budget, settings), selection, measure,
                             compact, measured, scaled(progress, i / DROP_LADDER, (i + 1) / DROP_LADDER), cancel)
        if found is not None and (found[1].top1 or 0.0) >= floor - 1e-12:
            if best is None or found[1].size_bytes < best[1].size_bytes:
                best = found
            break  # the ladder rises: the first budget that keeps the accuracy is the smallest
    if best is None:
        original = {layer: LayerSetting() for layer in table.entries}
        result = measure([("original", recipe_for(original, compact=compact))], selection, cancel=cancel)[0]
        best = (original, result)
    return best
