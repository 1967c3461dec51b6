"""Helpers shared by the cluster and e2e tiers."""
