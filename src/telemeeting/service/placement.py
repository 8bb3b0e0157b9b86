"""Which media node carries a new meeting's calls: the live one with the fewest calls.

The list of live nodes is read at most once a second; between reads each choice counts as one
more call on the chosen node, so a burst of new meetings spreads instead of piling on one node.
"""

from __future__ import annotations

from collections.abc import Callable

from telemeeting.store.unit_of_work import Database

#: How long the list of live media nodes is reused.
CACHE_SECONDS = 1.0


class Placement:
    def __init__(
        self,
        db: Database,
        node_id: str,
        local_media: bool,
        lease_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self._node_id = node_id
        self._local_media = local_media
        self._lease = lease_seconds
        self._clock = clock
        self._load: dict[str, int] = {}
        self._read_at = float("-inf")

    async def choose(self) -> str:
        """The node id to own a meeting about to dial; "" when no media node is alive (the
        meeting's orders then wait until a media node adopts it)."""
        now = self._clock()
        if now - self._read_at > CACHE_SECONDS:
            async with self._db.reader() as uow:
                nodes = await uow.nodes.live(now - self._lease)
            self._load = {n.id: n.calls for n in nodes if "media" in n.role_set}
            self._read_at = now
        if not self._load:
            return self._node_id if self._local_media else ""
        chosen = min(self._load, key=lambda node: (self._load[node], node != self._node_id))
        self._load[chosen] += 1
        return chosen
