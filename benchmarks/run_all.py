"""Runs every benchmark script in this folder (each prints its table and updates the README)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["tabular.py", "imaging.py", "serving.py"]

failed = []
for script in SCRIPTS:
    path = HERE / script
    if not path.exists():
        continue
    print(f"=== {script}", flush=True)
    if subprocess.call([sys.executable, str(path)]) != 0:
        failed.append(script)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")
