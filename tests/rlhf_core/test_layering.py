"""rlhf_core is the ML library: no UI, no database."""

import subprocess
import sys


def test_importing_every_rlhf_core_module_loads_neither_streamlit_nor_sqlalchemy():
    code = (
        "import importlib, pkgutil, sys, rlhf_core\n"
        "names = [m.name for m in pkgutil.walk_packages(rlhf_core.__path__, 'rlhf_core.')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "print(len(names), sorted(m for m in ('streamlit', 'sqlalchemy', 'app', 'db') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    count, loaded = out.strip().split(" ", 1)
    assert int(count) >= 25 and loaded == "[]"
