"""Label-error detectors: pure functions from what training revealed to a score per sample.

Convention everywhere: higher score = more suspect. Detectors that also decide return flags.
"""
