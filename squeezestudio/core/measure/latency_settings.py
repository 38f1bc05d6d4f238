"""The latency measurement's targets and defaults, apart from the measuring code.

The CLI's argument parser reads these before torch and onnxruntime are loaded
(building the parser stays instant), so this module imports nothing heavy.
"""

from __future__ import annotations

TARGETS = ("onnx", "onnx-int8")
TARGET_LABELS = {"onnx": "float ONNX", "onnx-int8": "int8 ONNX"}
DEFAULT_BATCH = 16
DEFAULT_THREADS = 1
DEFAULT_REPEATS = 20
