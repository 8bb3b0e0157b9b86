"""The ASGI application: routing, the authentication chain, the envelope."""
