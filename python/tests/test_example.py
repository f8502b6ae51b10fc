"""examples/attention_maps.py runs as written and its heads do the jobs it says they do."""
import os
import subprocess
import sys

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "attention_maps.py")


def test_attention_maps_example(tmp_path):
    r = subprocess.run([sys.executable, EXAMPLE, str(tmp_path)], capture_output=True, text=True,
                       check=True, env=dict(os.environ))
    out = r.stdout
    assert "head 0 (previous token): the->the cat->the sat->cat on->sat" in out, out
    assert "head 2 (first token): " + " ".join("%s->the" % t for t in
                                                "the cat sat on the mat because the mat was warm"
                                                .split()) in out, out
    assert (tmp_path / "heads.png").stat().st_size > 1000
    assert (tmp_path / "head1.png").stat().st_size > 1000
    diff = float(out.rsplit("weights: ", 1)[1].split()[0])
    assert diff < 1e-5
