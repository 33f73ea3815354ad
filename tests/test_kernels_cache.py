"""fastem._kernels_cache: the cache decision and the guard against stale kernels."""

from pathlib import Path

from fastem import _kernels_cache
from fastem._kernels_cache import DIGEST_FILE, drop_stale_kernels, kernel_sources_digest

PACKAGE = Path(_kernels_cache.__file__).resolve().parent


def cached_files(directory):
    names = [
        "_kernels_estep.dense_statistics-512.py311.nbi",
        "_kernels_estep.dense_statistics-512.py311.1.nbc",
        "_kernels_exp.exp64-263.py311.nbi",
    ]
    for name in names:
        (directory / name).write_bytes(b"cached")
    (directory / "other_module.f-1.py311.nbi").write_bytes(b"not ours")
    return names


def test_kernels_are_cached_when_a_location_is_writable():
    # The test run imports fastem from a writable checkout.
    assert _kernels_cache.CACHE is True


def test_digest_covers_every_kernel_module_and_nothing_else(tmp_path):
    for source in PACKAGE.glob("_kernels_*.py"):
        (tmp_path / source.name).write_bytes(source.read_bytes())
    (tmp_path / "mixture.py").write_text("x = 1\n")
    digest = kernel_sources_digest(tmp_path)
    assert digest == kernel_sources_digest(PACKAGE)
    (tmp_path / "mixture.py").write_text("x = 2\n")
    assert kernel_sources_digest(tmp_path) == digest
    exp = tmp_path / "_kernels_exp.py"
    exp.write_bytes(exp.read_bytes() + b"\n# an edit\n")
    assert kernel_sources_digest(tmp_path) != digest


def test_stale_kernels_are_deleted_and_the_digest_recorded(tmp_path):
    names = cached_files(tmp_path)
    (tmp_path / DIGEST_FILE).write_text("digest of other sources\n")
    assert drop_stale_kernels(tmp_path, "new digest") is True
    assert not any((tmp_path / name).exists() for name in names)
    assert (tmp_path / "other_module.f-1.py311.nbi").exists()
    assert (tmp_path / DIGEST_FILE).read_text().strip() == "new digest"


def test_a_cache_without_a_digest_counts_as_stale(tmp_path):
    names = cached_files(tmp_path)
    assert drop_stale_kernels(tmp_path, "digest") is True
    assert not any((tmp_path / name).exists() for name in names)


def test_kernels_compiled_from_the_same_sources_are_kept(tmp_path):
    names = cached_files(tmp_path)
    (tmp_path / DIGEST_FILE).write_text("same digest\n")
    assert drop_stale_kernels(tmp_path, "same digest") is False
    assert all((tmp_path / name).exists() for name in names)


def test_an_unusable_directory_is_left_alone(tmp_path):
    missing = tmp_path / "absent"
    assert drop_stale_kernels(missing, "digest") is False
    assert not missing.exists()


def test_the_package_cache_directory_records_the_current_sources():
    directory = _kernels_cache._cache_directory()
    assert directory is not None
    recorded = (Path(directory) / DIGEST_FILE).read_text().strip()
    assert recorded == kernel_sources_digest()
