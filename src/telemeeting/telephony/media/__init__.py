"""Media for SIP legs: RTP, jitter buffer, G.711, the N-1 mixer, RFC 4733 DTMF and SDP.

Nothing here knows about SIP dialogs; the SIP engine feeds it addresses and codecs.
"""
