"""`make bench` keeps working: its harness runs once per row (no timing is asserted;
figures belong to `make bench`, not to tests)."""

from __future__ import annotations

from benchmarks import gpu_facts


def test_gpu_facts_benchmark_measures_every_row_and_prints_its_table():
    rows = gpu_facts.measure(runs=1)
    assert [len(times) for _name, times in rows] == [1, 1, 1]
    assert all(time > 0 for _name, times in rows for time in times)
    table = gpu_facts.table(rows)
    assert "kubegpu.core.gpu_facts (8xH100 fake NVML)" in table
    assert "gather_subset=min" in table
