"""The ytx TeleMeeting wire protocol, shared by the server and the SDK.

Nothing here does I/O: signing, status codes, request ids, body parsing, callback bodies.
"""
