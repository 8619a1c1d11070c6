"""examples/pytorch_ds2.py trains from the shards: its loss falls within 30 seconds."""

import os
import re
import subprocess
import sys

from conftest import REPOSITORY


def test_pytorch_example_learns(datasets):
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "examples/pytorch_ds2.py"), datasets["float16-global"],
         "--max-seconds", "25", "--hidden", "64", "--layers", "1", "--channels", "8", "--batch-size", "8", "--epochs", "100"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    match = re.search(r"loss ([0-9.]+) → ([0-9.]+) in (\d+) epoch", result.stdout)
    assert match, result.stdout
    first, last, epochs = float(match[1]), float(match[2]), int(match[3])
    assert epochs >= 3 and last < 0.8 * first, result.stdout
