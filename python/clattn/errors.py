"""The library's status codes as exceptions.

Every failure raises a subclass of :class:`Error` carrying ``status`` (the ``clattn_status`` value)
and ``message`` (the library's own words, from ``clattn_context_last_error``). Invalid arguments
are also ``ValueError`` (and a wrong kind of object a ``TypeError``), so code written for NumPy or
PyTorch catches them as it would theirs.
"""
import ctypes

from . import _lib


class Error(Exception):
    """A clattn call failed; ``status`` is the C status code, ``message`` the library's detail."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(Error, ValueError):
    status = _lib.INVALID_ARGUMENT


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument of a kind the package cannot take (a list where an array goes, say)."""


class UnsupportedError(Error):
    status = _lib.UNSUPPORTED


class OutOfMemoryError(Error, MemoryError):
    status = _lib.OUT_OF_MEMORY


class DeviceNotFoundError(Error):
    status = _lib.DEVICE_NOT_FOUND


class BuildError(Error):
    status = _lib.BUILD_FAILED


class OpenCLError(Error):
    status = _lib.OPENCL_ERROR


class IOError_(Error, OSError):
    status = _lib.IO_ERROR


IOError_.__name__ = IOError_.__qualname__ = "IOError"

_BY_STATUS = {c.status: c for c in (InvalidArgumentError, UnsupportedError, OutOfMemoryError,
                                     DeviceNotFoundError, BuildError, OpenCLError, IOError_)}


def status_name(status):
    text = _lib.LIB.clattn_status_string(status)
    return text.decode() if text else "status %d" % status


def raise_for(status, detail):
    """Raises the exception of a failed status with the library's detail (or the code's name)."""
    cls = _BY_STATUS.get(status, Error)
    message = detail or status_name(status)
    raise cls(message, status)


def context_error(ctx_handle):
    """The calling thread's copy of the context's last error message."""
    n = _lib.LIB.clattn_context_last_error_copy(ctx_handle, None, 0)
    buf = ctypes.create_string_buffer(n + 1)
    _lib.LIB.clattn_context_last_error_copy(ctx_handle, buf, n + 1)
    return buf.value.decode(errors="replace")


def check(status, ctx_handle=None, err_buf=None):
    """Raises for a non-zero status: the message from ctx_handle's last error, or from err_buf."""
    if status == _lib.SUCCESS:
        return
    if ctx_handle:
        detail = context_error(ctx_handle)
    elif err_buf is not None:
        detail = err_buf.value.decode(errors="replace")
    else:
        detail = ""
    raise_for(status, detail)


def invalid(message):
    """An invalid argument found by the package itself, before any C call."""
    return InvalidArgumentError(message, _lib.INVALID_ARGUMENT)
