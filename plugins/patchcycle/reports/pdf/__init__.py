"""The patch cycle PDF report a tenant's compliance contact (and their auditor) reads.

Built with reportlab platypus and reportlab.graphics charts from the cycle's evidence document
(``schema_version`` "1.0" to "1.4"), read as the typed view of
:mod:`patchcycle.reports.evidence_document` (checked against the schema of its version). Pure: no cloud
or file I/O. Only hosts needing attention are laid out (capped); the full per-host list is the CSV in the
same evidence pack.

Where things are: :mod:`.report` is the entry point and reads as the report's table of contents; each
section is a module (:mod:`.overview`, :mod:`.controls`, :mod:`.risk`, :mod:`.exceptions`,
:mod:`.access`, :mod:`.hosts`, :mod:`.patches`); :mod:`.charts` draws the charts; :mod:`.layout` is the
layout engine (cells, tables, headings, footer); :mod:`.style` holds the limits, colours and styles.

The sections from "control coverage" to "access review" read optional top-level keys
(``controls``/``controls_summary``/``retention``, ``risk``, ``trend``, ``exceptions``, ``access``);
when a key is absent or None (older documents) the section says it has no data. The schemas type little
inside them, so their values are read with the checks of :mod:`.style`, as are a host's and a stage's
untyped fields. Long tables are capped and the report says how many more rows are in ``evidence.json``.
"""

from patchcycle.reports.pdf.charts import compliance_chart, host_states_chart, overdue_chart, trend_chart
from patchcycle.reports.pdf.hosts import attention_hosts, version_drift_hosts
from patchcycle.reports.pdf.report import render_cycle_report
from patchcycle.reports.pdf.style import (
    ATTENTION_STATES,
    MAX_ACCESS_ROWS,
    MAX_ATTENTION_ROWS,
    MAX_RISK_ROWS,
    RELEASED_BASIS_LABELS,
    STATE_COLOURS,
    STATE_HEX,
)

__all__ = [
    "ATTENTION_STATES",
    "MAX_ACCESS_ROWS",
    "MAX_ATTENTION_ROWS",
    "MAX_RISK_ROWS",
    "RELEASED_BASIS_LABELS",
    "STATE_COLOURS",
    "STATE_HEX",
    "attention_hosts",
    "compliance_chart",
    "host_states_chart",
    "overdue_chart",
    "render_cycle_report",
    "trend_chart",
    "version_drift_hosts",
]
