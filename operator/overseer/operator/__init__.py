"""The Kopf operator of schema-overseer: admission webhooks, reconciliation and the hot swap.

`kopf run -m overseer.operator` imports this package, which registers the handlers; importing it
does no I/O.
"""
