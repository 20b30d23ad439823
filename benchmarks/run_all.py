"""Runs every benchmark script in this folder (each prints its table and updates the README).

A benchmark is any ``*.py`` here except this runner, ``readme_table.py`` and modules starting with ``_``;
``python benchmarks/run_all.py NAME ...`` runs only those named.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = {"run_all.py", "readme_table.py"}
scripts = sorted(p.name for p in HERE.glob("*.py") if p.name not in HELPERS and not p.name.startswith("_"))
wanted = [f"{name.removesuffix('.py')}.py" for name in sys.argv[1:]] or scripts

failed = []
for script in wanted:
    print(f"=== {script}", flush=True)
    if subprocess.call([sys.executable, str(HERE / script)]) != 0:
        failed.append(script)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
