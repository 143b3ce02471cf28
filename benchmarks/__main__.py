"""``python -m benchmarks`` (``make bench``): every benchmark, one table each."""

from __future__ import annotations

from benchmarks import gpu_facts, lab, node_labels, site_scale


def main() -> None:
    gpu_facts.main()
    print()
    node_labels.main()
    print()
    lab.main()
    print()
    site_scale.main()


if __name__ == "__main__":
    main()
