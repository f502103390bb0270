"""The Kubeflow pipeline wiring and the `segpipe` command line."""
