"""The FastAPI scoring service and the packaged-model definition it serves."""
