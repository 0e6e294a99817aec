"""The progress report a streaming job writes for fab status, from Spark's progress event."""

from __future__ import annotations

import json
from pathlib import Path

from rtm.consumer.runner import progress_of
from rtm.consumer.sinks import write_progress
from rtm.health import hostprobe

# The fields of a StreamingQueryProgress that the report uses, as Spark 4 writes them.
SPARK_PROGRESS = {
    "id": "0c5c6a52-0000-0000-0000-000000000000",
    "name": "cpu_mem-windows",
    "timestamp": "2026-12-03T10:00:00.000Z",
    "batchId": 41,
    "numInputRows": 360,
    "durationMs": {"triggerExecution": 812, "addBatch": 640},
    "eventTime": {"watermark": "2025-01-01T00:03:39.000Z", "max": "2025-01-01T00:03:49.000Z"},
    "sources": [
        {
            "description": "KafkaV2[Subscribe[topic-cpu,topic-mem,topic-load]]",
            "startOffset": {"topic-cpu": {"0": 10}},
            "endOffset": {"topic-cpu": {"0": 130, "1": 95}, "topic-mem": {"0": 240}},
            "numInputRows": 360,
        }
    ],
}


def test_the_report_has_the_batch_the_offsets_read_up_to_and_the_watermark() -> None:
    earlier = {**SPARK_PROGRESS, "batchId": 40, "timestamp": "2026-12-03T09:59:59.000Z"}
    earlier["durationMs"] = {"triggerExecution": 530}
    report = progress_of("cpu_mem", SPARK_PROGRESS, [earlier, SPARK_PROGRESS])
    assert report == {
        "job": "cpu_mem",
        "batch_id": 41,
        "batch_at": "2026-12-03T10:00:00.000Z",
        "input_rows": 360,
        "offsets": {"topic-cpu": {"0": 130, "1": 95}, "topic-mem": {"0": 240}},
        "watermark": "2025-01-01T00:03:39.000Z",
        "duration_ms": {"triggerExecution": 812, "addBatch": 640},
        "recent": [["2026-12-03T09:59:59.000Z", 530, 360], ["2026-12-03T10:00:00.000Z", 812, 360]],
    }
    # Older Spark versions give the offsets as a JSON string.
    as_text = {**SPARK_PROGRESS, "sources": [{"endOffset": json.dumps({"topic-cpu": {"0": 7}})}]}
    assert progress_of("cpu_mem", as_text)["offsets"] == {"topic-cpu": {"0": 7}}


def test_fab_status_reads_back_what_the_job_wrote(tmp_path: Path) -> None:
    path = tmp_path / "cpu_mem" / "stream" / "progress.json"
    write_progress(path, progress_of("cpu_mem", SPARK_PROGRESS, [SPARK_PROGRESS]))
    assert [p.name for p in path.parent.iterdir()] == ["progress.json"]  # no temporary left
    line = f"progress\tcpu_mem\t4\t{path.read_text().strip()}"
    facts = hostprobe.parse(line)
    assert not facts.problems
    assert facts.progress["cpu_mem"] == hostprobe.Progress(
        "cpu_mem",
        41,
        4.0,
        {"topic-cpu": {"0": 130, "1": 95}, "topic-mem": {"0": 240}},
        (("2026-12-03T10:00:00.000Z", 812),),
    )
