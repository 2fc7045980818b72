"""What the experiments decide: the findings registry (registry: each finding's facts in one entry),
the statistics they decide by (statistics), and stored records, baselines and tolerances (records).
"""
