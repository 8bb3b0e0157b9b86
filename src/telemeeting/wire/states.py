"""The state names of the contract: a member's (leg's) call states (spec §7, the CallState push
and queryMeeting's `state`) and a meeting's (spec §6.4). The server's domain model, the SDK and
the client CLI take them from here, so that a name is spelled once."""

from __future__ import annotations

# Leg states, in the order a leg walks them (it may skip steps, and reaches DISCONNECT once).
CALLOUT = "callout"
ALERTING = "alerting"
ANSWER = "answer"
DISCONNECT = "disconnect"
#: **extension** (issue 15): a caller who dialled in and was admitted, not yet in the mix.
CALLIN = "callin"
LEG_STATES = (CALLOUT, CALLIN, ALERTING, ANSWER, DISCONNECT)
#: A leg in one of these states will not change again unless someone acts.
SETTLED_LEG_STATES = frozenset({ANSWER, DISCONNECT})

# Meeting states.
BOOKED = "booked"
ACTIVE = "active"
ENDED = "ended"
MEETING_STATES = (BOOKED, ACTIVE, ENDED)

#: A disconnect's stateDesc is `挂断|reason`: the reason follows this separator.
STATE_DESC_SEPARATOR = "|"
