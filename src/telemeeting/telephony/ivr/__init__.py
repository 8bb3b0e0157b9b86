"""Dial-in (issue 15): the IVR that asks a caller for the meeting number and PIN."""
