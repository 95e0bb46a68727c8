"""The FastAPI application. Depends on the other packages; nothing depends on it."""
