"""The project's exception types. Every user error is a :class:`ValuescopeError` with a one-line message.

The CLI prints that message after ``error:`` and exits with code 2; the Python API raises the same
exception with the same message. Subclasses (each also a subclass of the built-in type it always was):

- :class:`valuescope.study.spec.SpecError` (``ValueError``): a study, instrument, persona file or model option that
  cannot be used;
- :class:`valuescope.store.sqlite.StoreError` (``RuntimeError``): no store, an unknown run, an unusable database;
- :class:`valuescope.backends.base.BackendError` (``RuntimeError``): a model that cannot be loaded or reached;
- :class:`FigureError` (``ValueError``): a figure that cannot be drawn from the run's data (the reason says why).
"""

from __future__ import annotations


class ValuescopeError(Exception):
    """Base class of every error valuescope raises for bad input; the message is one line for the user."""


class FigureError(ValuescopeError, ValueError):
    """A figure that cannot be drawn from the data given (e.g. no baseline, one context only)."""
