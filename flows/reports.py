"""Run reports as Prefect artifacts, and the ``daily-report`` flow.

Every sync run publishes a markdown summary (counts, duration, throughput, the first
errors) and a table of what changed (new studies by NAS and modality). Artifacts carry
paths, UIDs, counts and reasons only: never patient names or birth dates (no PHI).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from nasindex.config import load_settings
from nasindex.health import nas_status, recent_runs
from nasindex.index.db import require_current
from nasindex.index.models import RunStatus
from nasindex.ops.catalog import DAILY_REPORT
from nasindex.sync import RunSummary


def artifact_key(*parts: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _cell(text: Any) -> str:
    """A markdown table cell: no pipes or newlines from a path or reason can break it."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def run_markdown(s: RunSummary) -> str:
    lines = [f"# {s.kind} run of NAS `{s.nas}`: **{s.status}**", ""]
    if s.message:
        lines += [f"> {_cell(s.message)}", ""]
    lines += ["| | |", "|---|---|",
              f"| index run | {s.run_id} |",
              f"| duration | {s.seconds:.1f} s |",
              f"| files read | {s.indexed} |",
              f"| throughput | {s.files_per_second:.0f} files/s |"]
    lines += [f"| {name} | {value} |" for name, value in s.counts().items()]
    new = ", ".join(f"{m} {n}" for m, n in sorted(s.new_studies.items())) or "none"
    lines += [f"| new studies | {new} |", ""]
    if s.first_errors:
        lines += ["## First errors", "", "| path | reason |", "|---|---|"]
        lines += [f"| `{_cell(path)}` | {_cell(reason)} |" for path, reason in s.first_errors]
        lines.append("")
        lines.append("All errors: `nasindex status` or the dashboard's health page.")
    return "\n".join(lines)


def changes_table(s: RunSummary) -> list[dict[str, Any]]:
    rows = [{"nas": s.nas, "modality": m, "new_studies": n}
            for m, n in sorted(s.new_studies.items())]
    return rows or [{"nas": s.nas, "modality": "(none)", "new_studies": 0}]


def publish_run_report(s: RunSummary) -> None:
    """The markdown summary and the what-changed table of one run, in the Prefect UI."""
    kind = s.kind.replace("_", "-")
    create_markdown_artifact(run_markdown(s), key=artifact_key(s.nas, kind, "report"),
                             description=f"{s.kind} run of NAS {s.nas}: {s.status}")
    create_table_artifact(changes_table(s), key=artifact_key(s.nas, kind, "new-studies"),
                          description=f"New studies by modality, {s.kind} run of NAS {s.nas}")


def day_summary(status: list[dict[str, Any]], runs: list[dict[str, Any]],
                since: datetime) -> list[dict[str, Any]]:
    """Per NAS: what the index holds now and what the runs since ``since`` did."""
    rows = []
    for nas in status:
        mine = [r for r in runs if r["nas"] == nas["nas"] and _after(r["started_at"], since)]
        failed = [r for r in mine if RunStatus(r["status"]).unsuccessful]
        rows.append({
            "nas": nas["nas"], "type": nas["type"], "runs": len(mine),
            "succeeded": sum(r["status"] == RunStatus.SUCCEEDED for r in mine),
            "failed": len(failed),
            **{f"files_{k}": sum(r[k] or 0 for r in mine) for k in ("new", "changed",
                                                                     "missing", "failed")},
            "patients": nas["patients"], "studies": nas["studies"],
            "images": nas["instances"], "errors_open": nas["errors"],
            "last_failure": failed[0]["message"] if failed else None,
        })
    return rows


def _after(iso: str | None, since: datetime) -> bool:
    if not iso:
        return False
    when = datetime.fromisoformat(iso)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since


def day_markdown(rows: list[dict[str, Any]], since: datetime) -> str:
    lines = [f"# nasindex: the day since {since:%Y-%m-%d %H:%M} UTC", "",
             "| NAS | runs | ok | failed | new files | changed | missing | file errors "
             "| images | studies | open errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['nas']} | {r['runs']} | {r['succeeded']} | {r['failed']} | "
                     f"{r['files_new']} | {r['files_changed']} | {r['files_missing']} | "
                     f"{r['files_failed']} | {r['images']} | {r['studies']} | "
                     f"{r['errors_open']} |")
    failures = [r for r in rows if r["last_failure"]]
    if failures:
        lines += ["", "## Last failure per NAS", ""]
        lines += [f"- **{r['nas']}**: {_cell(r['last_failure'])}" for r in failures]
    return "\n".join(lines)


@flow(name=DAILY_REPORT.flow, flow_run_name=DAILY_REPORT.flow)
def daily_report(config: str | None = None, hours: float = 24) -> list[dict[str, Any]]:
    """The last ``hours`` across every NAS, from the run records `nasindex status` reads."""
    settings = load_settings(config)
    engine = require_current(settings.index.url)
    since = datetime.now(UTC) - timedelta(hours=hours)
    rows = day_summary(nas_status(engine, scope=None),
                       recent_runs(engine, limit=10_000, scope=None), since)
    create_markdown_artifact(day_markdown(rows, since), key="daily-report",
                             description="nasindex: runs and index state per NAS")
    create_table_artifact(rows, key="daily-report-by-nas", description="Per NAS, last day")
    get_run_logger().info("daily report: %d NAS, %d runs, %d failed", len(rows),
                          sum(r["runs"] for r in rows), sum(r["failed"] for r in rows))
    return rows
