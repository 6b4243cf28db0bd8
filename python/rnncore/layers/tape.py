"""Gradients of a user-written call() that only chains rnncore's own pieces.

A user layer or cell without a backward() may still train when its call() is made of calls
to rnncore layers, cells and activations (the forecasting chapter's layer-normalised cell:
SimpleRNNCell -> LayerNormalization -> activation). While such a call runs in training, a
Tape records each of those calls with what its backward needs; backward then runs them in
reverse, summing the gradients of arrays read twice. Any array the call computes in plain
NumPy is unknown to the tape: backward then refuses, naming the call that read it, rather
than give a wrong gradient.
"""

from __future__ import annotations

import threading

import numpy as np

_active = threading.local()


class Tape:
    """The recorded calls of one user call(): (inputs, outputs, backward(douts, grads))."""

    def __init__(self, owner, training, inputs):
        self.owner, self.training = owner, training
        self.ops: list = []
        self.inputs = list(inputs)
        self._known = {id(a) for a in self.inputs}
        self._keep = list(self.inputs)  # arrays stay alive, so their ids stay theirs
        self.unknown = None  # the first recorded call that read an array of unknown origin

    def record(self, what, inputs, outputs, backward) -> None:
        """Notes a call: its input and output arrays and backward(douts, grads) -> dinputs."""
        for a in inputs:
            if id(a) not in self._known and self.unknown is None:
                self.unknown = what
        self.ops.append((list(inputs), list(outputs), backward))
        self._known.update(id(o) for o in outputs)
        self._keep += list(inputs) + list(outputs)

    def gradients(self, outputs, douts, grads) -> list:
        """d(loss)/d(inputs) for d(loss)/d(outputs), weight gradients added into grads."""
        for o in outputs:
            if id(o) not in self._known:
                self.unknown = self.unknown or "its return value"
        if self.unknown is not None:
            raise NotImplementedError(
                f"{self.owner}: call() computes {self.unknown} from an array made in plain "
                "NumPy, whose gradient rnncore cannot know; define backward() to train it"
            )
        g: dict = {}

        def add(a, d):
            if d is not None:
                g[id(a)] = d if id(a) not in g else g[id(a)] + d

        for o, d in zip(outputs, douts):
            add(o, d)
        for inputs, outs, backward in reversed(self.ops):
            if not any(id(o) in g for o in outs):
                continue
            d_outs = [g.get(id(o), np.zeros_like(o)) for o in outs]
            for a, d in zip(inputs, backward(d_outs, grads)):
                add(a, d)
        return [g.get(id(a), np.zeros_like(a)) for a in self.inputs]


def active() -> Tape | None:
    """The tape of the user call running on this thread, if any."""
    stack = getattr(_active, "stack", None)
    return stack[-1] if stack else None


class recording:
    """`with recording(tape):` makes tape the active one for the calls inside."""

    def __init__(self, tape):
        self.tape = tape

    def __enter__(self):
        if not hasattr(_active, "stack"):
            _active.stack = []
        _active.stack.append(self.tape)
        return self.tape

    def __exit__(self, *exc):
        _active.stack.pop()
        return False
