"""Import a script of benchmarks/ by path, as a module of its package, so that its
relative imports (``from . import problems``) work without changing sys.path."""

import importlib
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark_module(name):
    """benchmarks/<name>.py as ``benchmarks.<name>``."""
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", BENCHMARKS / "__init__.py",
            submodule_search_locations=[str(BENCHMARKS)])
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{name}")
