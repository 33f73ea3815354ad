"""benchmarks/compare.py: issue 12's flop count and the DGEMM share it prints.

The counts are written out here from the issue's formula (N K (2 D^2 + 6 D + 7)
for 'full', N K (8 D + 7) for 'diag') with each problem's N, D and K, not taken
from the code under test.
"""

import re

import pytest
from benchmark_modules import load_benchmark_module  # tests/benchmark_modules.py


def load_compare():
    return load_benchmark_module("compare")


# problem at scale 1000: (N, D, K, flops per iteration by the issue's formula)
COUNTS = {
    "P1": (1_000, 2, 4, 1_000 * 4 * (2 * 4 + 12 + 7)),
    "P2": (1_000, 8, 16, 1_000 * 16 * (2 * 64 + 48 + 7)),
    "P3": (4_096, 32, 32, 4_096 * 32 * (2 * 1_024 + 192 + 7)),  # at least 4 K D rows
    "P5": (1_000, 16, 32, 1_000 * 32 * (8 * 16 + 7)),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_flops_per_iteration_is_issue_12s_count(name):
    compare = load_compare()
    problem = compare.problems.make_problem(name, 1000)
    n_samples, n_features, n_components, flops = COUNTS[name]
    assert (problem.n_samples, problem.n_features, problem.n_components) == (
        n_samples, n_features, n_components)
    assert compare.problems.flops_per_iteration(problem) == flops


def test_dgemm_columns_are_the_rate_and_its_share_of_the_faster_dgemm():
    compare = load_compare()
    args = compare.parse_arguments([
        "--scale", "1000", "--problems", "P2", "P4", "--repeats", "1", "--dgemm",
        "--dgemm-size", "64", "--target-seconds", "0.005"])
    lines = []
    compare.run(args, out=lines.append)

    header = next(line for line in lines if line.startswith("- DGEMM:"))
    before, after = (float(rate) for rate in re.search(
        r"([0-9.]+) GFLOP/s before the problems, ([0-9.]+) after", header).groups())
    def cells(line):
        return [cell.strip() for cell in line.strip("|").split("|")]

    columns = cells(lines[lines.index("") + 1])
    rows = {row[0]: row for row in map(cells, lines) if row[0].startswith("P")}
    rate_column = columns.index("fastem GFLOP/s")
    assert columns[rate_column + 1] == "share of DGEMM (target)"

    # every figure is read back as printed: seconds and the rate to 3 significant
    # digits (each up to 0.5% off), the share to 0.1%
    p2 = rows["P2/1000"]
    seconds = float(p2[columns.index("fastem s/iter")])
    rate = COUNTS["P2"][3] / seconds / 1e9
    assert float(p2[rate_column]) == pytest.approx(rate, rel=1e-2)
    share = re.fullmatch(r"([0-9.]+)% \(>= 50%\)", p2[rate_column + 1]).group(1)
    faster = max(before, after)
    assert float(share) == pytest.approx(100 * float(p2[rate_column]) / faster,
                                         rel=1e-2, abs=0.05)
    assert rows["P4"][rate_column:rate_column + 2] == ["", ""]  # a whole fit per figure


def test_dgemm_size_must_be_positive():
    compare = load_compare()
    with pytest.raises(SystemExit):
        compare.parse_arguments(["--dgemm", "--dgemm-size", "0"])
