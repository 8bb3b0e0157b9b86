"""Status pushes: the outbox dispatcher, its retry policy and signing."""
