"""`overseer deployment new`: a ModelDeployment manifest from a saved model.

The model (a BentoML model in the local store, or a weights file with its config given as options)
gives the name, version, labels, metadata and customObjects; the digest is computed from the bytes
of the weights file; the schema reference (a file or the cluster) gives schemaRef. The result is
checked the way `overseer validate` checks it before anything is printed or written. `--update FILE`
rewrites the model section of an existing manifest in place, keeping its comments and layout.

Modules: `values` (config values from options and files), `saved_model` (BentoML store, weights
files, digests), `manifest` (building and checking), `update` (the in-place rewrite), `command`
(the CLI wiring).
"""
