"""Telephony drivers behind one interface: the simulated carrier now, SIP media nodes later."""
