"""A form generated from a method's pydantic Params: one widget per field, from its type, bounds and choices."""

from __future__ import annotations

import typing
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLineEdit, QSlider,
                               QSpinBox, QWidget)

_SLIDER_STEPS = 1000


def _decimals(value: float, span: float) -> int:
    """Enough decimals to show the default and fine steps across the range."""
    import math

    need = [2]
    if value:
        need.append(2 - math.floor(math.log10(abs(value))))  # 0.3 -> 3 decimals, 1e-4 -> 6
    if span and span < 1:
        need.append(2 - math.floor(math.log10(span)))
    return max(0, min(8, max(need)))


def _to_float(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # pydantic reports it, naming the field


def _bounds(info) -> tuple[float | None, float | None]:
    lo = hi = None
    for m in info.metadata:
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
        lo = getattr(m, "gt", None) if lo is None and getattr(m, "gt", None) is not None else lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
        hi = getattr(m, "lt", None) if hi is None and getattr(m, "lt", None) is not None else hi
    return lo, hi


def _choices(annotation) -> list | None:
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    try:
        import enum

        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return [e.value for e in annotation]
    except TypeError:
        pass
    return None


class _FloatEdit(QWidget):
    """A slider and a spin box that stay in step (bounded floats)."""

    valueChanged = Signal(float)

    def __init__(self, lo: float, hi: float, value: float, parent=None):
        super().__init__(parent)
        self.lo, self.hi = lo, hi
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setRange(0, _SLIDER_STEPS)
        self.spin = QDoubleSpinBox(self)
        self.spin.setRange(lo, hi)
        self.spin.setDecimals(3 if hi - lo <= 10 else 2)
        self.spin.setSingleStep((hi - lo) / 100 or 0.01)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self.set_value(value)

    def _from_slider(self, i: int) -> None:
        self.spin.setValue(self.lo + (self.hi - self.lo) * i / _SLIDER_STEPS)

    def _from_spin(self, v: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round((v - self.lo) / ((self.hi - self.lo) or 1) * _SLIDER_STEPS))
        self.slider.blockSignals(False)
        self.valueChanged.emit(v)

    def value(self) -> float:
        return self.spin.value()

    def set_value(self, v: float) -> None:
        self.spin.setValue(float(v))


class ParamsForm(QWidget):
    """Signals ``changed()`` whenever a value changes. ``values()`` returns what pydantic will validate."""

    changed = Signal()

    def __init__(self, params_cls, parent=None):
        super().__init__(parent)
        self.params_cls = params_cls
        self.widgets: dict[str, QWidget] = {}
        self.readers: dict[str, Any] = {}
        self.writers: dict[str, Any] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        per_layer = set(params_cls.per_layer_fields())
        for name, info in params_cls.model_fields.items():
            widget = self._make(name, info)
            label = (info.title or name.replace("_", " ")).capitalize() + (" *" if name in per_layer else "")
            widget.setToolTip((info.description or "") + ("\n* can be overridden per layer" if name in per_layer
                                                          else ""))
            form.addRow(label, widget)
            self.widgets[name] = widget

    def _make(self, name: str, info) -> QWidget:
        annotation, default = info.annotation, info.get_default(call_default_factory=True)
        choices = _choices(annotation)
        if choices is not None:
            w = QComboBox(self)
            for c in choices:
                w.addItem(str(c), c)
            w.setCurrentIndex(max(0, choices.index(default) if default in choices else 0))
            w.currentIndexChanged.connect(self.changed)
            self.readers[name] = lambda w=w: w.currentData()
            self.writers[name] = lambda v, w=w: w.setCurrentIndex(max(0, w.findData(v)))
            return w
        if annotation is bool:
            w = QCheckBox(self)
            w.setChecked(bool(default))
            w.toggled.connect(self.changed)
            self.readers[name] = w.isChecked
            self.writers[name] = lambda v, w=w: w.setChecked(bool(v))
            return w
        lo, hi = _bounds(info)
        if annotation is int:
            w = QSpinBox(self)
            w.setRange(int(lo) if lo is not None else -10**9, int(hi) if hi is not None else 10**9)
            w.setValue(int(default or 0))
            w.valueChanged.connect(self.changed)
            self.readers[name] = w.value
            self.writers[name] = lambda v, w=w: w.setValue(int(v))
            return w
        if annotation is float:
            value = float(default or 0)
            wide = lo is not None and hi is not None and lo > 0 and hi / lo >= 1000
            if lo is not None and hi is not None and not wide:
                w = _FloatEdit(float(lo), float(hi), value, self)
                w.spin.setDecimals(_decimals(value, float(hi) - float(lo)))
                w.set_value(value)
                w.valueChanged.connect(self.changed)
                self.readers[name] = w.value
                self.writers[name] = w.set_value
                return w
            # Ranges over orders of magnitude (learning rates) are typed, e.g. 3e-4: a linear slider cannot hold them.
            w = QLineEdit(f"{value:g}", self)
            w.setValidator(QDoubleValidator(float(lo) if lo is not None else -1e12,
                                            float(hi) if hi is not None else 1e12, 12, w))
            w.setToolTip(f"{lo:g} … {hi:g}" if wide else "")
            w.textChanged.connect(self.changed)
            self.readers[name] = lambda w=w: _to_float(w.text())
            self.writers[name] = lambda v, w=w: w.setText(f"{float(v):g}")
            return w
        w = QLineEdit(self)
        is_list = typing.get_origin(annotation) is list
        w.setText(", ".join(map(str, default or [])) if is_list else ("" if default is None else str(default)))
        if is_list:
            w.setPlaceholderText("comma-separated layer names or scopes")
        w.textChanged.connect(self.changed)
        self.readers[name] = ((lambda w=w: [s.strip() for s in w.text().split(",") if s.strip()]) if is_list
                              else w.text)
        self.writers[name] = ((lambda v, w=w: w.setText(", ".join(map(str, v)))) if is_list
                              else (lambda v, w=w: w.setText(str(v))))
        return w

    def values(self) -> dict[str, Any]:
        return {name: read() for name, read in self.readers.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name in self.writers:
                self.writers[name](value)
