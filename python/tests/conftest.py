"""Fixtures of the Python suite: one context for the session (kernels compile once), seeded RNGs
and the tolerances of the C suite (tests/testutil.h) per storage type."""
import numpy as np
import pytest

import clattn

# |got - ref| <= TOL * max(1, max|ref|): float32 to 1e-5 as the C suite; float16 and bfloat16 to a
# few units of their last place (the reference rounds its result to the storage type too).
TOL = {"float32": 2e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


@pytest.fixture(scope="session")
def ctx():
    with clattn.Context() as c:      # $CLATTN_DEVICE, else the library's choice
        yield c


@pytest.fixture
def rng(request):
    # a seed per test, so a failure repeats alone
    return np.random.default_rng(abs(hash(request.node.name)) % (2 ** 32))


def as_f32(x):
    """float32 NumPy values of an array or tensor of any float dtype."""
    if type(x).__module__.startswith("torch"):
        return x.detach().float().numpy()
    return np.asarray(x, dtype=np.float32)


def assert_close(got, ref, dtype="float32", what=""):
    g, r = as_f32(got), as_f32(ref)
    assert g.shape == r.shape, (what, g.shape, r.shape)
    assert np.all(np.isfinite(g) == np.isfinite(r)), what
    fin = np.isfinite(r)
    err = float(np.max(np.abs(g[fin] - r[fin]), initial=0.0))
    bound = TOL[dtype] * max(1.0, float(np.max(np.abs(r[fin]), initial=0.0)))
    assert err <= bound, "%s: max|err| %.3g > %.3g" % (what, err, bound)
