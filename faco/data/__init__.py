"""The FACO data: the synthetic world and its items (world, world_items), the item schema (items),
nested corruption (corruption), the nine real sources and their formats (sources, source_formats), the
teacher and its prompts (teacher, prompts), the real-data builder (build, built_items) and the dataset
on disk (dataset). May import faco.core, faco.config and faco.models (the served teacher).
"""
