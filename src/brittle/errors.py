"""brittle's exceptions, all in one tree.

Every brittle error derives from :class:`BrittleError` *and* from the builtin
exception a caller would naturally catch, so ``except ValueError`` keeps
working for code that does not know about brittle::

    BrittleError
    ├── ConfigError(ValueError)          bad option, suite or class map
    ├── DatasetError(ValueError)         a dataset that cannot be read
    ├── ModelError(RuntimeError)         a model that cannot be loaded or run
    │   └── ModelUnavailableError        it cannot answer for any image: the run stops
    ├── UnknownNameError(KeyError)       unknown perturbation / reader / predictor
    ├── MissingDependencyError(ImportError)  an optional extra is not installed
    └── ShapeError(ValueError)           an array with the wrong shape or dtype

Messages always name the offending file (and line when there is one) and,
where one exists, the fix.

>>> try:
...     raise DatasetError("labels/a.txt:3: expected 5 numbers, got 4")
... except ValueError as exc:
...     print(type(exc).__name__, exc)
DatasetError labels/a.txt:3: expected 5 numbers, got 4
"""

from __future__ import annotations


class BrittleError(Exception):
    """Base class of every error brittle raises on purpose."""


class ConfigError(BrittleError, ValueError):
    """A command-line option, suite file or class map is invalid."""


class DatasetError(BrittleError, ValueError):
    """A dataset cannot be read (or, with ``--strict``, has a bad record)."""


class ModelError(BrittleError, RuntimeError):
    """A model cannot be loaded, or its outputs cannot be decoded."""


class ModelUnavailableError(ModelError):
    """The model cannot answer for any image (an endpoint down, a key refused).

    Unlike a ModelError on one image, which brittle records and goes on, this stops the
    run: every other image would fail the same way. Predictions made so far stay cached.
    """


class ShapeError(BrittleError, ValueError):
    """An array has the wrong shape or dtype; the message says what was expected."""


class UnknownNameError(BrittleError, KeyError):
    """A registry lookup failed; the message suggests the closest names."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument, which would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(BrittleError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""
