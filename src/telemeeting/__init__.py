"""telemeeting: a self-hostable phone-conference platform speaking the ytx.net TeleMeeting API."""

__version__ = "0.1.0"
