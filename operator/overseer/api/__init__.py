"""API models of overseer.dev/v1alpha1 and the serving-pod model document."""
