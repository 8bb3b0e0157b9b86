"""Use cases over a unit of work: create, invite, destroy, query, and the carrier's reports."""
