"""Kubernetes conventions and access shared by the services: label and annotation keys,
object names and host paths, and the client configuration (in-cluster, else KUBECONFIG)."""
