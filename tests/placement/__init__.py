"""Placement and scaling: simulated GPU clusters, profiles, the KubeRay manifest."""
