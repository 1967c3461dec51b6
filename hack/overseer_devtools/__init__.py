"""Tools for the project's tests, benchmarks and demo - not part of any shipped package.

`shapes` draws pictures of red squares and blue circles with their boxes; `models` trains tiny
YOLO detectors on them (`make models`, cached by recipe; `training` runs in a process of its own)
and `scoring` checks answers against what was drawn (matching, mAP50); `demo_detect` shows one
answer as a picture. `toymodels` builds random detectors for tests where only the mechanics
matter; `localserver` runs a local `overseer serve` process tree and stops it without orphans.
They need the `serving` extra; nothing here runs at import.
"""
