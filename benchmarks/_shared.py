"""Pieces the benchmark scripts share (they run as scripts, so this folder is on ``sys.path``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(stem: str, report: dict[str, Any], markdown: str, folder: Path = RESULTS) -> None:
    """``folder/stem.json`` (the raw report) and ``folder/stem.md`` (its table), then the table on stdout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (folder / f"{stem}.md").write_text(markdown)
    print(markdown)


def tuned_row(tuned: Any, path: Path, settings: Any) -> dict[str, Any]:
    """A MetaSchedule-tuned measurement of ``path`` on the tvm device ``tuned``: median ms, tuning seconds and
    how many kernels the model has."""
    return {"tuned_ms": tuned.run_model(path, settings).median, "tune_s": tuned.last_compile_s,
            "kernels": tuned.last_tuning.get("kernels")}
