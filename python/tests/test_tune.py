"""Tuning and the caches from Python: a short clattn_tune and clattn_tune_varlen run saved into a
private cache folder, the entries they file, the plan that then uses them, cache_info, clearing."""
import numpy as np

import clattn


def test_tune_saves_and_is_used(tmp_path):
    seen = []
    with clattn.Context(cache_dir=str(tmp_path), ignore_environment=True) as c:
        info = c.cache_info()
        assert info["enabled"] and info["dir"] == str(tmp_path) and info["tuning_entries"] == 0
        spec = ((1, 2, 64, 32), "float32")
        rep = c.tune(spec, spec, spec, causal="bottom_right", path="fused", budget_s=4,
                     max_candidates=3, repeats=2, progress=seen.append)
        assert rep["path"] == "fused" and rep["families"][0]["family"] == "flash"
        assert 1 <= rep["families"][0]["tried"] <= 3 and rep["saved"]
        assert rep["best_ms"] > 0 and seen and seen[-1]["family"] == "flash"
        entries = c.tuning_entries()
        assert len(entries) == c.cache_info()["tuning_entries"] >= 1
        assert "flash" in entries[0]
        assert "tuned" in c.plan(spec, spec, spec, causal="bottom_right")
        c.set_tuning(False)
        assert "default" in c.plan(spec, spec, spec, causal="bottom_right")
        c.set_tuning(True)
        rep = c.tune_varlen([0, 1, 2, 3], seqlens_k=[40, 7, 90], block_size=16, heads_q=4,
                            heads_kv=2, head_dim=32, causal="bottom_right", budget_s=4,
                            max_candidates=2, repeats=2, save=False)
        assert rep["families"][0]["family"].startswith("flash") and not rep["saved"]
        c.clear_cache()
        assert c.cache_info()["tuning_entries"] == 0
    with clattn.Context(cache=False) as c:
        assert not c.cache_info()["enabled"]


def test_log_callback_gets_plans():
    lines = []
    with clattn.Context(log=lambda level, msg: lines.append((level, msg)), log_plans=True,
                        cache=False) as c:
        q = np.ones((1, 1, 3, 8), np.float32)
        c.attention(q, q, q)
    assert any(level == "plan" and "fused path" in msg for level, msg in lines)
