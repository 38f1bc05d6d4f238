"""Measuring: evaluation on data, ``measure_recipe`` (exact bytes + accuracy), sweeps, sensitivity, classify."""
