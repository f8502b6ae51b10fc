"""The lifetime of a C object a Python object owns: closed by close(), a with block, or the
garbage collector, once; a closed one refuses further use with a clear error.

Calls into the library hold the handle with ``using()`` for as long as they run: a close() from
another thread in the meantime (or of a context a Group borrows) only marks the object closed,
and the last call in progress releases it, so no call ever runs on a freed C object."""
import contextlib
import threading

from .errors import invalid


class Handle:
    _what = "object"         # for the error message: "this clattn.Context is closed"

    def _open(self, handle, release):
        self._lock = threading.Lock()
        self._release = release
        self._handle = handle
        self._users = 0          # calls (and borrowers) holding the handle now
        self._pending = None     # a closed handle that the last of them releases

    @property
    def handle(self):
        h = getattr(self, "_handle", None)
        if h is None:
            raise invalid("this clattn.%s is closed" % self._what)
        return h

    def _acquire(self):
        with self._lock:
            h = self._handle
            if h is not None:
                self._users += 1
        if h is None:   # raised outside the lock: building the error may run a collection
            raise invalid("this clattn.%s is closed" % self._what)
        return h

    def _drop(self):
        with self._lock:
            self._users -= 1
            h = self._pending if self._users == 0 else None
            if h is not None:
                self._pending = None
        if h is not None:
            self._release(h)

    @contextlib.contextmanager
    def using(self):
        """The handle, held open until the block ends (see the module's doc)."""
        h = self._acquire()
        try:
            yield h
        finally:
            self._drop()

    def close(self):
        lock = getattr(self, "_lock", None)
        if lock is None:         # never opened (a constructor that failed early)
            return
        with lock:
            h, self._handle = self._handle, None
            if h is not None and self._users > 0:
                self._pending, h = h, None
        if h is not None:
            self._release(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()
