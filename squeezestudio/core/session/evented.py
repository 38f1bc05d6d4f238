"""Typed change events, one per field of an object (a small EventedModel without Qt).

The desktop app used to learn of a session change through five coarse
events and then guess what else had changed (a new model also clears the
selection, a project reopens the recipe...), so the GUI kept a second layer
of signals. With one typed event per field, a view subscribes to exactly the
fields it shows, and every assignment is seen, whoever made it::

    class Session:
        model_path = EventedField[Optional[str]](None)

        def __init__(self):
            self.changed = FieldEvents(type(self))

    s = Session()
    s.changed.model_path.connect(print)
    s.model_path = "m.onnx"          # prints m.onnx; assigning the same value again prints nothing

An event fires after the new value is stored, only when the value really
changed: the same object, or an equal plain value (str, number, bool, path),
is not a change.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, Callable, Generic, Optional, TypeVar, overload

T = TypeVar("T")
_PLAIN = (str, bytes, int, float, bool, PurePath, type(None))


class FieldEvent(Generic[T]):
    """Callbacks called with a field's new value."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[T], None]] = []

    def connect(self, callback: Callable[[T], None]) -> Callable[[T], None]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[T], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: T) -> None:
        for callback in list(self._callbacks):
            callback(value)


def same_value(old: Any, new: Any) -> bool:
    """True when assigning ``new`` over ``old`` is not a change (identity, or equal plain values)."""
    if old is new:
        return True
    return isinstance(old, _PLAIN) and isinstance(new, _PLAIN) and type(old) is type(new) and old == new


class EventedField(Generic[T]):
    """A descriptor: the attribute's value lives on the instance; each change fires ``obj.changed.<name>``."""

    def __init__(self, default: T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> "EventedField[T]": ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: Optional[object], owner: type) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.name, self.default)

    def __set__(self, obj: object, value: T) -> None:
        old = obj.__dict__.get(self.name, self.default)
        obj.__dict__[self.name] = value
        if not same_value(old, value):
            events = obj.__dict__.get("changed")
            if events is not None:
                getattr(events, self.name).emit(value)


class FieldEvents:
    """One :class:`FieldEvent` per :class:`EventedField` of ``owner`` (and its bases), as attributes."""

    def __init__(self, owner: type) -> None:
        self.names: tuple[str, ...] = tuple(evented_fields(owner))
        for name in self.names:
            setattr(self, name, FieldEvent(name))

    def __getattr__(self, name: str) -> FieldEvent[Any]:  # only reached for a name that is not a field
        raise AttributeError(f"no evented field {name!r}; the fields are {', '.join(self.names)}")


def evented_fields(owner: type) -> list[str]:
    """Names of ``owner``'s evented fields, in definition order."""
    names: list[str] = []
    for cls in reversed(owner.__mro__):
        for name, value in vars(cls).items():
            if isinstance(value, EventedField) and name not in names:
                names.append(name)
    return names
