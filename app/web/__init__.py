"""The HTTP side: Flask blueprints, request validation, errors, request ids and the request log."""
