"""Why a meeting operation was refused; the API maps each to its status code."""


class DomainError(Exception):
    """Base of every refusal the domain can give."""


class MeetingNotFound(DomainError):
    pass


class MeetingEnded(DomainError):
    pass


class MeetingFull(DomainError):
    pass


class MemberAlreadyIn(DomainError):
    pass


class MemberNotFound(DomainError):
    pass


class InvalidRequest(DomainError):
    """A value that parsed but makes no sense for this meeting (for instance a past booktime)."""
