"""A SIP user agent over UDP (RFC 3261) for dial-out conferences, and the driver around it."""
