"""fastem's benchmarks: the asv suites (bench_em.py), the registry of problems and
implementations they share with tests/test_benchmarks.py (problems.py), and the
side-by-side script compare.py. See README.md, section "Benchmarks"."""
