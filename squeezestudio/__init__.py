"""SqueezeStudio: an interactive workbench for compressing image classifiers.

The package is split so that data flows one way:
``core`` (headless: loading, inspection, data, evaluation, compression, export)
-> ``cli`` (a thin command line over the core) and ``gui`` (a thin Qt view).
Nothing in ``core`` imports Qt.
"""

__version__ = "0.1.0"
