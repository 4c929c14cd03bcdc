"""The report's jinja2 templates (``report.html.j2``, ``report.md.j2``, ``report.css``,
``report.js``), shipped as the package ``gaspprobe.report_templates``; read by
:mod:`gaspprobe.reporting.publish`. Nothing to import here."""
