"""Settings, declared once: fields and checks, the per-step configs, the run context, and the
kfp components derived from them."""
