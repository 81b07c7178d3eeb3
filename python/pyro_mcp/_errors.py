"""Exceptions raised by the SDK.

Every failed operation raises a subclass of :class:`PyroError` carrying the
same ``code`` and ``message`` as the CLI's ``--json`` error envelope, and a
``hint`` worded for Python (a method call rather than a command line), or
``None`` when the message says it all. The class follows the code:

============================  ==================================================
class                         codes
============================  ==================================================
:class:`NotFoundError`        ``not_found``
:class:`InvalidArgumentError` ``invalid_argument``, ``unknown_environment``
:class:`ConflictError`        ``conflict``
:class:`StateError`           ``invalid_state``, ``environment_not_installed``
:class:`PyroRuntimeError`     every other code (host, VM or guest agent
                              failures: ``boot_failed``, ``guest_lost``,
                              ``missing_dependency``, ``interrupted``, ...)
============================  ==================================================

The first three are also :class:`ValueError` (the caller's input is at
fault), the last two :class:`RuntimeError`, as the 3.x SDK raised them.
"""

from __future__ import annotations


class PyroError(Exception):
    """A failed pyro operation.

    Attributes:
        code: stable machine-readable code (``not_found``, ``invalid_state``, ...).
        message: one line saying what went wrong.
        hint: what to do next, worded for Python, or ``None``.
    """

    code: str
    message: str
    hint: str | None

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(code, message, hint)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, hint={self.hint!r})"


class NotFoundError(PyroError, ValueError):
    """No workspace, snapshot, path or other object has that id or name."""


class InvalidArgumentError(PyroError, ValueError):
    """Bad input: a value out of range, a malformed name, an unknown environment."""


class ConflictError(PyroError, ValueError):
    """Something already exists where the operation would create it (a taken
    name, an existing snapshot or output path)."""


class StateError(PyroError, RuntimeError):
    """The workspace (or environment) is not in a state that allows the
    operation: stopped when it must be started, not yet built, ..."""


class PyroRuntimeError(PyroError, RuntimeError):
    """pyro failed: the host, the VM or the guest agent (not the caller's input)."""


_CLASSES: dict[str, type[PyroError]] = {
    "not_found": NotFoundError,
    "invalid_argument": InvalidArgumentError,
    "unknown_environment": InvalidArgumentError,
    "conflict": ConflictError,
    "invalid_state": StateError,
    "environment_not_installed": StateError,
}


def error_from(code: str, message: str, hint: str | None) -> PyroError:
    """The exception for an error ``(code, message, hint)`` from the native module."""
    return _CLASSES.get(code, PyroRuntimeError)(code, message, hint)
