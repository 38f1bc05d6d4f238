"""The byte-budget search: the most accurate per-layer recipe that fits in N bytes.

Sits above ``measure`` in the layer order (it measures recipes with
:func:`~squeezestudio.core.measure.measure_recipe.measure_recipe`):
``settings`` (what a layer can be given), ``layer_table`` (each setting's
measured damage and exact byte cost, per layer), ``allocation`` (a
Lagrangian choice over that table), ``candidates`` (measuring whole recipes,
a plain function over a list), ``budget_search`` (the search itself).
"""
