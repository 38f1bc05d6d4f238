"""Exceptions the user is meant to read.

Every error raised for bad input derives from :class:`SqueezeStudioError`; its
message is one plain sentence that says what is wrong and, where it helps, what
to do. The CLI prints it without a traceback and the GUI shows it in a message,
so an error of this family never crashes the application.
"""

from __future__ import annotations


class SqueezeStudioError(Exception):
    """Base class: a problem with the user's input, reported in one sentence."""


class ModelLoadError(SqueezeStudioError):
    """A model file is missing, empty, truncated or not in a format we read."""


class UntrustedCodeError(ModelLoadError):
    """Loading this file would execute code and the user has not said they trust it."""


class ArchitectureMismatchError(ModelLoadError):
    """A checkpoint's keys or shapes do not fit the chosen architecture."""


class UnsupportedOperatorError(ModelLoadError):
    """An ONNX graph uses an operator the converter does not support."""


class UnsafeModelFileError(ModelLoadError):
    """An ONNX file points at external data outside its folder (or similar)."""


class DataError(SqueezeStudioError):
    """A data set cannot be used: empty, unreadable, or classes do not match the model."""


class PreprocessingError(DataError):
    """A preprocessing spec is invalid or contradicts the model (channels, crop larger than resize)."""


class ImageDecodeError(DataError):
    """A file is not a usable image (corrupt, not an image, a decompression bomb)."""


class RecipeError(SqueezeStudioError):
    """A compression recipe is invalid: unknown layer or method, value out of range."""


class CodecError(SqueezeStudioError):
    """A compressed (.sqz) file is malformed, truncated or of an unknown version."""


class ExportError(SqueezeStudioError):
    """An export could not be written; the previous file, if any, is untouched."""


class PluginError(SqueezeStudioError):
    """A compression-method plugin is missing or failed to load."""


class LimitExceededError(SqueezeStudioError):
    """An input would need more memory, nesting or work than a limit of ``core/limits.py`` allows."""


class OutputPathError(ExportError):
    """An output path cannot be written (missing folder, not writable, not a regular file)."""


class ClusterError(SqueezeStudioError):
    """A Ray cluster cannot be used: the extra is not installed, the address is wrong or unreachable."""
