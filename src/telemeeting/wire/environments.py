"""The two environments of the real platform (spec §2)."""

PRODUCTION = "production"  # api.ytx.net
SANDBOX = "sandbox"  # sandbox.ytx.net
ENVIRONMENTS = (PRODUCTION, SANDBOX)
