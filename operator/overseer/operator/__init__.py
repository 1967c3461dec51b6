"""The Kopf operator of schema-overseer: admission webhooks, reconciliation and status.

`kopf run -m overseer.operator` imports this package, which registers the handlers; importing it
does no I/O (settings, credentials and servers are made by the startup handler). The embedded
runner for local mode and tests is `python -m overseer.operator`.

Modules: settings (the one settings object), admission (pure decisions), render (pure: what a
ModelDeployment turns into), status (pure: conditions and Events), webhooks (the configuration
template and certificates), kube (async API client), admission_service and reconcile (the I/O
shells), runtime (what the handlers share), handlers (Kopf registration only).
"""

from overseer.operator import handlers as handlers
