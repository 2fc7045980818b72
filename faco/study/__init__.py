"""The study: the table of stages (stages), the study that walks it for one seed and the seeds pooled
(study), the jobs that build it (execution: local, Slurm, debug), and sweep points (sweep).
May import every layer below; the findings, the report and the plugin import it.
"""
