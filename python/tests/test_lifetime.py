"""A context or group closed while a call of it runs (from another thread, or from its own log
callback) is released when that call ends, never under it; a group keeps the contexts it
borrows until it is released itself."""
import threading

import numpy as np
import pytest

import clattn

from conftest import assert_close


def test_close_inside_a_call_waits_for_it(rng):
    q, k, v = (rng.standard_normal((1, 2, 33, 16), dtype=np.float32) for _ in range(3))
    closed_during = []

    def log(level, message):
        if level == "plan" and not closed_during:
            c.close()                          # the call is still running in the library
            closed_during.append(c._pending is not None)

    c = clattn.Context(log=log, log_plans=True, cache=False)
    got = c.attention(q, k, v)
    assert closed_during == [True]             # deferred: the call held the context
    assert c._pending is None                  # and released by that call's end
    assert_close(got, clattn.attention_reference(q, k, v))
    with pytest.raises(clattn.InvalidArgumentError, match="closed"):
        c.attention(q, k, v)
    c.close()                                  # twice is fine


def test_close_from_another_thread(rng):
    q, k, v = (rng.standard_normal((1, 4, 300, 64), dtype=np.float32) for _ in range(3))
    c = clattn.Context(cache=False)
    want = c.attention(q, k, v)                # kernels built: the next calls only run
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(c.attention(q, k, v))
        except clattn.InvalidArgumentError as e:   # a call that starts after close: refused
            errors.append(str(e))

    t = threading.Thread(target=work)
    t.start()
    while not results and t.is_alive():
        pass
    c.close()
    t.join()
    for r in results:
        assert np.array_equal(r, want)
    assert all("closed" in e for e in errors)


def test_group_keeps_borrowed_contexts(rng):
    q, k, v = (rng.standard_normal((1, 2, 9, 16), dtype=np.float32) for _ in range(3))
    c = clattn.Context(cache=False)
    g = clattn.Group(contexts=[c])
    c.close()                                  # borrowed: only marked closed
    assert c._pending is not None
    with pytest.raises(clattn.InvalidArgumentError, match="closed"):
        c.attention(q, k, v)
    assert_close(g.attention(q, k, v), clattn.attention_reference(q, k, v))
    g.close()                                  # the group lets the context go: released now
    assert c._pending is None
    with pytest.raises(clattn.InvalidArgumentError, match="closed"):
        clattn.Group(contexts=[c])


def test_a_dropped_group_is_released_at_once(rng):
    """The group does not refer to itself: dropping the last reference releases it (and the
    contexts it borrowed) without waiting for the cycle collector."""
    import gc
    gc.disable()
    try:
        c = clattn.Context(cache=False)
        g = clattn.Group(contexts=[c])
        c.close()
        assert c._pending is not None
        del g
        assert c._pending is None
    finally:
        gc.enable()
