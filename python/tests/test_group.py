"""clattn.Group on two PoCL devices, in a process of its own (POCL_DEVICES must be set before
OpenCL starts): both splits against one device, the plan, calibration, refusals."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np, clattn
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 8, 40, 32), dtype=np.float32)
    k = rng.standard_normal((2, 2, 70, 32), dtype=np.float32)
    v = rng.standard_normal((2, 2, 70, 32), dtype=np.float32)
    ref, ref_lse = clattn.attention_reference(q, k, v, causal="bottom_right", return_lse=True)
    with clattn.Group(["0:0", "0:1"], cache=False) as g:
        assert g.size == 2
        for split in ("heads", "keys"):
            out, lse = g.attention(q, k, v, causal="bottom_right", split=split, return_lse=True)
            assert np.abs(out - ref).max() < 4e-5 and np.abs(lse - ref_lse).max() < 4e-5, split
        plan = g.plan(((1, 8, 1, 32), "float32"), ((1, 2, 4096, 32), "float32"),
                      ((1, 2, 4096, 32), "float32"))
        assert plan["split"] == "keys" and plan["first"] == [0, 2048, 4096], plan
        ms = g.calibrate(q, k, v)
        assert len(ms) == 2 and min(ms) > 0
        assert g.plan(q, k, v)["measured"]
        _, w = g.attention(q, k, v, return_weights=True)
        assert w.shape == (2, 8, 40, 70)
        try:
            g.attention(q, k, v, split="keys", return_weights=True)
            raise SystemExit("KEYS with weights was not refused")
        except clattn.InvalidArgumentError as e:
            assert "probs" in str(e), e
        try:
            g.attention(q, k, v, split="rows")
            raise SystemExit("a bad split was not refused")
        except ValueError:
            pass
    ctxs = [clattn.Context("0:0", cache=False), clattn.Context("0:1", cache=False)]
    with clattn.Group(contexts=ctxs) as g:
        assert np.abs(g.attention(q, k, v, causal="bottom_right") - ref).max() < 4e-5
    try:
        clattn.Group(["0:0", "no such device"])
        raise SystemExit("an unknown device was not refused")
    except clattn.DeviceNotFoundError as e:
        assert "device 1" in str(e), e
    print("group ok")
""")


def test_group_on_two_devices():
    env = dict(os.environ, POCL_DEVICES="pthread pthread")
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "group ok" in r.stdout, r.stdout + r.stderr
