"""The lifetime of a C object a Python object owns: closed by close(), a with block, or the
garbage collector, once; a closed one refuses further use with a clear error."""
import threading

from .errors import invalid


class Handle:
    _what = "object"         # for the error message: "this clattn.Context is closed"

    def _open(self, handle, release):
        self._lock = threading.Lock()
        self._release = release
        self._handle = handle

    @property
    def handle(self):
        h = getattr(self, "_handle", None)
        if h is None:
            raise invalid("this clattn.%s is closed" % self._what)
        return h

    def close(self):
        with self._lock:
            h, self._handle = self._handle, None
        if h:
            self._release(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()
