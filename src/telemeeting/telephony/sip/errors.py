"""SIP errors, one small hierarchy."""


class SipError(Exception):
    """Base of everything the SIP layer raises."""


class SipParseError(SipError, ValueError):
    """A datagram or header value that is not valid SIP."""
