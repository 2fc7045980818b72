"""The study: the table of stages (stages), the study that walks it for one seed and the seeds pooled
(study), the parallel prebuild of independent training runs (parallel), and sweep points (sweep).
May import every layer below; the findings, the report and the plugin import it.
"""
