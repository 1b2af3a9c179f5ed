"""The batch benchmark: one test per cell of the model x mode matrix (see `pytest --help`, group vllmbench)."""


def test_batch(vllmbench_cell, benchmark):
    result = vllmbench_cell.run(benchmark)
    assert result.n_failed == 0, f"{result.n_failed} request(s) failed: {result.errors}"
    assert result.output_tokens > 0
