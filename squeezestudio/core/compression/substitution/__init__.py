"""Architecture changes: Fire-module substitution, its initialisation and calibration.

``fire_module`` holds the replacement modules, ``svd_init`` their data-free
low-rank start, ``calibration`` captures a layer's inputs/outputs with hooks,
``reconstruction`` fits a replacement to them, and ``module_surgery`` swaps a
module by its dotted name. The compression method that drives them is
:mod:`squeezestudio.core.compression.fire`.
"""
