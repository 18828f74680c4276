"""rlhf_core is the ML library: no UI, no database."""

import subprocess
import sys


def test_importing_rlhf_core_loads_neither_streamlit_nor_sqlalchemy():
    code = (
        "import sys, rlhf_core, rlhf_core.envs, rlhf_core.behaviours, rlhf_core.trajectories, rlhf_core.clips\n"
        "print(sorted(m for m in ('streamlit', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
