"""The HTML report (html), its figures (figures), the sweep section (sweep) and what they share (common),
built from stored findings records; no stage key covers this code, so an edit rebuilds nothing.
"""
