"""What ships inside an exported model for serving it with standard tools (MLflow pyfunc)."""
