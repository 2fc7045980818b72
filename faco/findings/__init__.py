"""faco.findings.records."""
