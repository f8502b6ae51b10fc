"""The ctypes structs of clattn/_lib.py against the C header: a C program compiled here prints
every struct's size and every field's offset, which must equal ctypes' own. A field added to
clattn.h without its twin in _lib.py fails here rather than corrupting memory at run time."""
import os
import shutil
import subprocess

import pytest

from clattn import _lib

INCLUDE = os.environ.get("CLATTN_TEST_INCLUDE") or \
    os.path.join(os.path.dirname(__file__), "..", "..", "include")
BUILD = os.environ.get("CLATTN_TEST_BUILD")


def c_layout(tmp_path):
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "clattn.h"', 'int main(void) {']
    for name, st in _lib.STRUCTS.items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (name, name))
        for field, _ in st._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (name, field, name, field))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    incs = ["-I", INCLUDE] + (["-I", BUILD] if BUILD else [])
    subprocess.run([cc, "-DCL_TARGET_OPENCL_VERSION=120", *incs, str(src), "-o", str(exe)],
                   check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_structs_match_the_header(tmp_path):
    import ctypes
    c = c_layout(tmp_path)
    for name, st in _lib.STRUCTS.items():
        assert int(c[name]) == ctypes.sizeof(st), name
        for field, _ in st._fields_:
            assert int(c["%s.%s" % (name, field)]) == getattr(st, field).offset, (name, field)


def test_every_public_struct_is_bound():
    header = open(os.path.join(INCLUDE, "clattn.h")).read()
    import re
    declared = set(re.findall(r"^} (clattn_\w+);", header, re.M)) - {
        "clattn_status", "clattn_log_level", "clattn_switch", "clattn_device_class_choice",
        "clattn_dtype", "clattn_layout", "clattn_causal", "clattn_mask_type", "clattn_path",
        "clattn_projection_impl", "clattn_kv_storage", "clattn_kv_tensor",
        "clattn_mha_weight_buffers"}   # enums, and device-buffer weights (pyopencl users: issue)
    assert declared <= set(_lib.STRUCTS), declared - set(_lib.STRUCTS)
