"""The simulated carrier (spec §8)."""

from telemeeting.telephony.sim.carrier import SimulatedCarrier

__all__ = ["SimulatedCarrier"]
