"""Benchmarks of the rtm pipeline: producer throughput, end-to-end alert latency, deployment.

Run with ``python -m bench`` (``make bench``). Benchmarks measure and report; they never pass
or fail on a timing. Every figure is the median of several runs with its min and max, written
to ``bench/results/<section>.json`` and summarised in ``bench/results/README.md``.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
