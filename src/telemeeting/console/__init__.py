"""The web console (issue 13): account holders and operators watch and steer meetings, pushes,
CDRs, apps and accounts from a browser. Server-rendered pages over the same service layer as the
API and the CLI; served by `telemeeting serve` on its own listener (`[console] port`)."""
