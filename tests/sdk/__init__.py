"""The Python SDK, its webhooks helpers, the client CLI and the demo."""
