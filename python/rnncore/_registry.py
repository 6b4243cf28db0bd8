"""Named classes of one kind (losses, optimizers): lookup by name and (de)serialization."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Registry:
    """The classes of one kind by the names users pass (`"adam"`, `"mse"`).

    Args:
        kind: What the classes are, for messages ("loss", "optimizer").
        base: Their base class: an instance of it passes `get` unchanged.
        names: Name -> class; several names may share a class.
        fold_case: Whether names match regardless of case (Keras does so for optimizers).
    """

    def __init__(self, kind: str, base: type, names: Mapping[str, type], fold_case: bool = False):
        self.kind, self.base, self.names, self.fold_case = kind, base, names, fold_case
        self.classes = {cls.__name__: cls for cls in names.values()}

    def get(self, value: Any) -> Any:
        """An instance for `value`: itself when already one, else a new one by name."""
        if isinstance(value, self.base):
            return value
        if isinstance(value, str):
            cls = self.names.get(value.lower() if self.fold_case else value)
            if cls is not None:
                return cls()
        raise ValueError(
            f"{self.kind}: unknown {self.kind} {value!r}; expected a {self.base.__name__} or "
            f"one of {tuple(self.names)}"
        )

    def option(self, value: Any, argument: str) -> Any:
        """A layer argument's instance (None stays None): an instance, a name, or a saved
        `serialize` dict; otherwise a ValueError naming `argument` and the lower-case names."""
        if value is None:
            return None
        try:
            return self.deserialize(value) if isinstance(value, dict) else self.get(value)
        except ValueError:
            names = ", ".join(repr(n) for n in self.names if n.islower())
            raise ValueError(
                f"{argument}: expected {names} or a {self.kind}, got {value!r}"
            ) from None

    def serialize_option(self, obj: Any) -> dict | None:
        """`serialize(obj)`, or None for None (an argument left unset)."""
        return None if obj is None else self.serialize(obj)

    def serialize(self, obj: Any) -> dict:
        """`{"class_name", "config"}` of an instance, as model files store it."""
        return {"class_name": type(obj).__name__, "config": obj.get_config()}

    def deserialize(self, spec: Any) -> Any:
        """The instance a `serialize` dict describes; ValueError for an unknown class."""
        if not isinstance(spec, dict) or spec.get("class_name") not in self.classes:
            raise ValueError(
                f"{self.kind} spec: expected one of {tuple(self.classes)}, got {spec!r:.200}"
            )
        return self.classes[spec["class_name"]](**spec.get("config", {}))
