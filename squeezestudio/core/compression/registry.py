"""Which compression methods exist: the built-ins plus plugins found through entry points.

A plugin is any installed distribution that declares an entry point in the
group ``squeezestudio.methods`` pointing at a :class:`CompressionMethod`
subclass (or an instance of one). A plugin that fails to import, or points at
something else, is recorded in :attr:`MethodRegistry.errors` with its message
(the GUI and CLI show it) and never stops the application.

The only module-level state is the cached default registry, and only the CLI
and the GUI ask for it: every core function that needs methods (the codec,
the loaders, the pipeline, fine-tuning) takes a ``registry`` argument, so a
test or a tool passes the registry it built with :func:`build_registry`.
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Any, Iterable, Optional, Union

import numpy as np

from squeezestudio.core.compression.activations import ActivationQuantization
from squeezestudio.core.compression.clustering import KMeansClustering
from squeezestudio.core.compression.encoding import CustomPayload
from squeezestudio.core.compression.fire import FireMethod
from squeezestudio.core.compression.method import CompressionMethod
from squeezestudio.core.compression.plugin_folder import register_folder_plugins
from squeezestudio.core.compression.pruning import MagnitudePruning
from squeezestudio.core.compression.quantization import WeightQuantization
from squeezestudio.core.errors import PluginError, RecipeError

ENTRY_POINT_GROUP = "squeezestudio.methods"


class UnknownMethodError(RecipeError, PluginError):
    """A recipe or a file names a method that is not registered."""


class MethodRegistry:
    """Compression methods by name, plus the errors met while loading plugins."""

    def __init__(self) -> None:
        self._methods: dict[str, CompressionMethod] = {}
        self.errors: list[tuple[str, str]] = []
        self.origins: dict[str, str] = {}

    def register(self, method: Union[type[CompressionMethod], CompressionMethod],
                 origin: str = "built-in") -> Any:
        """Add a method class or instance; returns its argument (usable as a decorator).

        ``origin`` says where it came from (shown by ``squeezestudio plugins``).
        """
        if isinstance(method, type):
            if not issubclass(method, CompressionMethod):
                raise PluginError(f"{method.__name__} is not a CompressionMethod, so it cannot be registered")
            try:
                instance = method()
            except Exception as exc:
                raise PluginError(f"{method.__name__} could not be created: {exc}") from exc
        else:
            instance = method
        if not isinstance(instance, CompressionMethod):
            raise PluginError(f"{method!r} is not a CompressionMethod, so it cannot be registered")
        name = getattr(instance, "name", "")
        if not isinstance(name, str) or not name:
            raise PluginError(f"{type(instance).__name__} has no name, so it cannot be registered")
        if name in self._methods and type(self._methods[name]) is not type(instance):
            raise PluginError(f"a method named {name!r} is already registered "
                              f"({type(self._methods[name]).__name__})")
        self._methods.setdefault(name, instance)
        self.origins.setdefault(name, origin)
        return method

    def get(self, name: str) -> CompressionMethod:
        """The method called ``name``; raises :class:`UnknownMethodError` if there is none."""
        try:
            return self._methods[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownMethodError(f"unknown method {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def names(self) -> list[str]:
        """Method names in application order."""
        return [m.name for m in self.methods()]

    def methods(self) -> list[CompressionMethod]:
        """Registered methods sorted by ``order`` (then name): the order a recipe applies them."""
        return sorted(self._methods.values(), key=lambda m: (m.order, m.name))

    def decode_custom(self, payload: CustomPayload, shape: tuple[int, ...]) -> np.ndarray:
        """Decoder for ``WeightEncoding.decode`` of ``kind == "custom"`` encodings."""
        return self.get(payload.method).decode_custom(payload, shape)

    def load_plugins(self, entry_points: Optional[Iterable[Any]] = None) -> None:
        """Register every plugin entry point; failures go to :attr:`errors`.

        ``entry_points`` defaults to the installed ``squeezestudio.methods``
        group; tests pass objects with ``name`` and ``load()``.
        """
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for ep in entry_points:
            plugin = str(getattr(ep, "name", ep))
            try:
                target = ep.load()
                if not (isinstance(target, CompressionMethod)
                        or (isinstance(target, type) and issubclass(target, CompressionMethod))):
                    raise PluginError(f"it provides {target!r}, not a CompressionMethod")
                dist = getattr(ep, "dist", None)
                version = f" {dist.version}" if dist is not None and getattr(dist, "version", None) else ""
                self.register(target, origin=f"entry point {plugin}{version}")
            except Exception as exc:  # a broken plugin must never stop the app
                message = str(exc) or type(exc).__name__
                self.errors.append((plugin, f"{type(exc).__name__}: {message}"))


def builtin_methods() -> list[type[CompressionMethod]]:
    """The method classes shipped with SqueezeStudio."""
    return [FireMethod, MagnitudePruning, KMeansClustering, WeightQuantization, ActivationQuantization]


def build_registry(*, plugins: bool = True, entry_points: Optional[Iterable[Any]] = None) -> MethodRegistry:
    """A fresh registry with the built-in methods and (optionally) the plugins."""
    registry = MethodRegistry()
    for cls in builtin_methods():
        registry.register(cls)
    if plugins:
        registry.load_plugins(entry_points)
        register_folder_plugins(registry)
    return registry


@functools.lru_cache(maxsize=1)
def default_registry() -> MethodRegistry:
    """The application's registry, built on first use (built-ins, installed plugins, plugins/ folder).

    Called by the CLI and the GUI only; they hand it to the core explicitly.
    """
    return build_registry()
