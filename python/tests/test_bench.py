"""python -m clattn.bench: its shape tables are bench/suite.c's, and one shape runs end to end."""
import os
import re

from clattn import bench

SUITE_C = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "suite.c")


def c_table(name):
    text = open(SUITE_C).read()
    body = re.search(r"static const bench_shape %s\[\] = \{(.*?)\n\};" % name, text, re.S).group(1)
    rows = re.findall(r'\{"([^"]+)",\s*([^}]*)\}', body)
    return [(n,) + tuple(int(x) for x in rest.split(",")) for n, rest in rows]


def test_tables_are_the_c_suites():
    assert bench.SUITE == c_table("default_suite")
    assert bench.QUICK_SUITE == c_table("quick_suite")


def test_one_shape_runs(capsys):
    bench.main(["--only", "decode-q", "--reps", "1"])
    out = capsys.readouterr().out
    assert re.search(r"decode-q\s+[\d.]+\s+[\d.]+\s+[\d.]+x", out), out
    assert "Python adds" in out
