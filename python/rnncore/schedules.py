"""Learning-rate schedules, as Keras 3 defines them: pass one as an optimizer's
`learning_rate` (also reachable as `rnncore.optimizers.schedules`).

A schedule maps the optimizer's step count (0 for the first update) to a learning rate.
"""

from __future__ import annotations

import math

__all__ = [
    "CosineDecay",
    "ExponentialDecay",
    "LearningRateSchedule",
    "PiecewiseConstantDecay",
    "deserialize",
    "serialize",
]


class LearningRateSchedule:
    """Base class: `schedule(step)` is the learning rate of update `step` (0-based)."""

    def __call__(self, step: int) -> float:
        """The learning rate of update `step` (0-based)."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The constructor arguments (Keras's config)."""
        raise NotImplementedError


def _positive_steps(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored with
    `staircase`.

    Example:
        >>> Adam(learning_rate=ExponentialDecay(1e-3, decay_steps=1000, decay_rate=0.9))
    """

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):  # fmt: skip
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.decay_rate = float(decay_rate)
        self.staircase = bool(staircase)
        self.name = name

    def __call__(self, step):
        """The decayed rate at `step`."""
        p = step / self.decay_steps
        exponent = math.floor(p) if self.staircase else p
        return self.initial_learning_rate * self.decay_rate**exponent

    def get_config(self):
        """The constructor arguments (Keras's config)."""
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}  # fmt: skip


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to and including boundaries[0], values[i] for steps in
    (boundaries[i-1], boundaries[i]], and values[-1] after the last boundary.

    Raises:
        ValueError: not one value more than boundaries, or boundaries not increasing.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), [float(v) for v in values]
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"values: expected one more than the {len(boundaries)} boundaries, "
                f"got {len(values)}"
            )
        if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries: expected increasing steps, got {boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        """The value of the interval `step` falls in."""
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        """The constructor arguments (Keras's config)."""
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from initial_learning_rate (or, after `warmup_steps` of linear warm-up,
    from warmup_target) to alpha times it over decay_steps, then constant.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):  # fmt: skip
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = _positive_steps("decay_steps", decay_steps)
        self.alpha, self.name = float(alpha), name
        self.warmup_target = None if warmup_target is None else float(warmup_target)
        self.warmup_steps = int(warmup_steps)

    def _decay(self, step, start):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        """The warmed-up or cosine-decayed rate at `step`."""
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * step / self.warmup_steps + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        """The constructor arguments (Keras's config)."""
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}  # fmt: skip


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay)}


def serialize(schedule: LearningRateSchedule) -> dict:
    """`{"class_name", "config"}` of a schedule, as model files store it."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(spec) -> LearningRateSchedule:
    """The schedule a `serialize` dict describes; ValueError for an unknown class."""
    if not isinstance(spec, dict) or spec.get("class_name") not in _CLASSES:
        raise ValueError(f"schedule spec: expected one of {tuple(_CLASSES)}, got {spec!r:.200}")
    return _CLASSES[spec["class_name"]](**spec.get("config", {}))


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
