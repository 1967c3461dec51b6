"""Tools for the project's tests, benchmarks and demo - not part of any shipped package.

`toymodels` builds small YOLO detectors from Ultralytics' bundled yaml (no download);
`localserver` runs a local `overseer serve` process tree and stops it without orphans.
They need the `serving` extra; nothing here runs at import.
"""
