"""faco.report.html."""
