"""Choose one setting per layer from the measured table: least total damage within a byte budget.

With damages treated as additive across layers, the choice that minimises
``sum(damage) + lam * sum(bytes)`` is optimal for the budget it lands on
(a Lagrangian relaxation of the multiple-choice knapsack); bisection on
``lam`` finds the smallest multiplier whose choice fits. :func:`spend_slack`
then upgrades layers into the bytes the rounding of ``lam`` left unused.
The additivity is only a model: every chosen recipe is measured for real
afterwards (:mod:`.candidates`).
"""

from __future__ import annotations

from typing import Optional

from squeezestudio.core.search.layer_table import LayerTable
from squeezestudio.core.search.settings import LayerSetting

Choice = dict[str, LayerSetting]


def choose_for_multiplier(table: LayerTable, lam: float) -> Choice:
    """Each layer's setting minimising damage + lam * bytes (ties: fewer bytes)."""
    choice: Choice = {}
    for layer in table.entries:
        choice[layer] = min(table.settings(layer),
                            key=lambda s: (table.damage(layer, s) + lam * table.cost(layer, s), table.cost(layer, s)))
    return choice


def allocate(table: LayerTable, budget_bytes: int, *, iterations: int = 60) -> Optional[Choice]:
    """The Lagrangian choice that fits ``budget_bytes`` (predicted), or None if even the smallest does not."""
    smallest = {layer: min(table.settings(layer), key=lambda s: table.cost(layer, s)) for layer in table.entries}
    if table.predicted_bytes(smallest) > budget_bytes:
        return None
    if table.predicted_bytes(choose_for_multiplier(table, 0.0)) <= budget_bytes:
        return spend_slack(table, choose_for_multiplier(table, 0.0), budget_bytes)
    lo, hi = 0.0, 1e-9
    while table.predicted_bytes(choose_for_multiplier(table, hi)) > budget_bytes:
        hi *= 4.0
        if hi > 1e12:
            return spend_slack(table, smallest, budget_bytes)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if table.predicted_bytes(choose_for_multiplier(table, mid)) > budget_bytes:
            lo = mid
        else:
            hi = mid
    return spend_slack(table, choose_for_multiplier(table, hi), budget_bytes)


def spend_slack(table: LayerTable, choice: Choice, budget_bytes: int) -> Choice:
    """Greedily switch layers to less damaging settings while the predicted size stays within the budget."""
    current = dict(choice)
    while True:
        slack = budget_bytes - table.predicted_bytes(current)
        best: Optional[tuple[float, str, LayerSetting]] = None
        for layer, setting in current.items():
            here_damage, here_cost = table.damage(layer, setting), table.cost(layer, setting)
            for other in table.settings(layer):
                gain = here_damage - table.damage(layer, other)
                extra = table.cost(layer, other) - here_cost
                if gain <= 0 or extra > slack:
                    continue
                score = gain / max(extra, 1)
                if best is None or score > best[0]:
                    best = (score, layer, other)
        if best is None:
            return current
        current[best[1]] = best[2]


def shrink_to(table: LayerTable, choice: Choice, budget_bytes: int) -> Choice:
    """Repair: move layers to cheaper settings (least damage per byte saved) until the prediction fits."""
    current = dict(choice)
    while table.predicted_bytes(current) > budget_bytes:
        best: Optional[tuple[float, str, LayerSetting]] = None
        for layer, setting in current.items():
            for other in table.settings(layer):
                saved = table.cost(layer, setting) - table.cost(layer, other)
                if saved <= 0:
                    continue
                score = (table.damage(layer, other) - table.damage(layer, setting)) / saved
                if best is None or score < best[0]:
                    best = (score, layer, other)
        if best is None:
            return current
        current[best[1]] = best[2]
    return current
