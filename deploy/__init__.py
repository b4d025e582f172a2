"""Deployment assets (Kubernetes manifests under k8s/) and their static checks (check/)."""
