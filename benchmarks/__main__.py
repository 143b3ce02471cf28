"""``python -m benchmarks`` (``make bench``): every benchmark, one table each."""

from __future__ import annotations

from benchmarks import gpu_facts


def main() -> None:
    gpu_facts.main()


if __name__ == "__main__":
    main()
