"""`make bench` keeps working: its harness runs once per row (no timing is asserted;
figures belong to `make bench`, not to tests)."""

from __future__ import annotations

from benchmarks import gpu_facts, node_labels


def test_gpu_facts_benchmark_measures_every_row_and_prints_its_table():
    rows = gpu_facts.measure(runs=1)
    assert [len(times) for _name, times in rows] == [1, 1, 1, 1]
    assert all(time > 0 for _name, times in rows for time in times)
    table = gpu_facts.table(rows)
    assert "kubegpu.core.gpu_facts (8xH100 fake NVML)" in table
    assert "gather_subset=min" in table
    assert "forked child (default, 8xH100)" in table


def test_node_labels_benchmark_checks_every_run_in_a_tiny_configuration():
    """(a) and (b) on 4 nodes, then a 12-node fleet: all differ, every 4th differs, no-op. The
    harness itself fails when a run's end state or its request counts are wrong."""
    rows = node_labels.measure(compare_nodes=4, fleets=(12,), differ_every=4)
    assert [row["nodes"] for row in rows] == [4, 4, 12, 12, 12]
    assert [row["counters"].get("patch nodes", 0) for row in rows] == [4, 4, 12, 3, 0]
    assert rows[-1]["counters"] == {"list nodes": 1}
    # where the time goes is measured for every row: the task's own time (the result_file callback saw the task),
    # and for ours the module process's CPU (the interpreter wrapper read it); not how fast, only that it was read
    assert all(row["task_seconds"] > 0 for row in rows)
    assert all(row["module_cpu"] > 0 for row in rows if "looped" not in row["name"])
    table = node_labels.table(rows)
    assert "kubernetes.core.k8s looped" in table and "ratio (b)/(a)" in table
    assert "ansible-playbook's own start and end" in table and "not measured" not in table
