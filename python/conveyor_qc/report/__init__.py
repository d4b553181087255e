"""``report.html``: the page a shift manager reads, for a run folder and for a batch folder.

One self-contained file (styles, charts as inline SVG, pictures as ``data:`` URIs; no script and
nothing fetched, so it opens from a USB stick or a mail with networking off), made from the
shipped templates (``template.html``, ``batch.html``, ``report.css`` beside this module). ``run``
writes one into every run folder as it finishes, ``batch`` one into the batch folder, and
``conveyor-qc report DIR`` makes one again. See docs/report.md.
"""

from __future__ import annotations

from conveyor_qc.report.batch_report import write_batch_report
from conveyor_qc.report.page import REPORT_NAME, ReportError
from conveyor_qc.report.run_report import GALLERY_LIMIT, write_run_report

__all__ = ["GALLERY_LIMIT", "REPORT_NAME", "ReportError", "write_batch_report", "write_run_report"]
