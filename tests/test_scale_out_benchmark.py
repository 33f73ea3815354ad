"""benchmarks/scale_out.py runs (tiny data, no cluster) and its fits agree bit for bit."""

import os
import subprocess
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_scale_out_benchmark_smoke(tmp_path):
    script = os.path.join(REPOSITORY, "benchmarks", "scale_out.py")
    result = subprocess.run(
        [sys.executable, script, "--rows", "60000", "--n-iter", "2", "--dir",
         str(tmp_path), "--configs", "memory,zarr"],
        capture_output=True, text=True, timeout=600, check=True,
    )
    assert "| zarr |" in result.stdout
    assert "same parameters bit for bit in every configuration: True" in result.stdout
