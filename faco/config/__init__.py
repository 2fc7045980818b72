"""What a study is made of, as typed data.

schema: the frozen dataclasses of a preset, checked by value when built; imports nothing of faco but
faco.core, so every other part can read its config. load: presets from TOML (presets/*.toml, or a user's
file), `--faco-set` overrides, and the names a preset gives checked against the source and benchmark lists
(it sits above faco.data and faco.evaluation in the layer order for that reason; see faco.LAYERS).
"""
