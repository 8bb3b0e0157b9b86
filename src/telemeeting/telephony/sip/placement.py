"""Placement of a meeting's legs on the media nodes (worker processes) of one server (issue 16).

Pure bookkeeping, no I/O: SipDriver asks `choose` where the next leg goes and keeps a `Span`
per meeting. A meeting starts on the least loaded node (its home: recording, and the first to
fill). When every node that carries it already has `limit` of its live legs, the next leg goes
to the least loaded node that does not carry it yet, and the driver links that node to every
node of the meeting first (a full mesh of cascade links, telephony/media/cascade.py). When every
live node carries the meeting and all are full, the least filled one takes the leg anyway: going
over the limit is better than refusing a member the meeting has room for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

#: The default `[placement] max_legs_per_node`: one media process mixes about 500-550 members
#: at its limit (docs/performance.md); 400 leaves a fifth of a core for ticks that run late on a
#: busy host, the links' own cost, and other meetings placed on the same node.
DEFAULT_MAX_LEGS_PER_NODE = 400


def choose(
    carrying: Sequence[int],
    legs: Mapping[int, int],
    load: Mapping[int, int],
    alive: Collection[int],
    limit: int,
) -> int:
    """The node for a meeting's next leg.

    `carrying`: the nodes that carry the meeting, home first (empty for a new meeting);
    `legs`: the meeting's live legs per node; `load`: every node's live legs, all meetings;
    `alive`: the nodes that can take a leg; `limit`: max_legs_per_node. Ties go to the lower
    index, so the choice is deterministic."""
    if not alive:
        raise ValueError("no media node is alive")
    for node in carrying:
        if node in alive and legs.get(node, 0) < limit:
            return node
    others = [node for node in alive if node not in carrying]
    if others:
        return min(others, key=lambda node: (load.get(node, 0), node))
    return min(
        (node for node in carrying if node in alive),
        key=lambda node: (legs.get(node, 0), load.get(node, 0), node),
    )


@dataclass(eq=False)
class Span:
    """One meeting as the driver places it: the nodes that carry it (home first) and its live
    legs, each with the node it is on."""

    nodes: list[int] = field(default_factory=list)
    legs: dict[str, int] = field(default_factory=dict)
    per_node: Counter[int] = field(default_factory=Counter)
    #: Someone answered: the meeting ends when its last live leg does (as an engine's would).
    joined: bool = False
    #: Legs that answered (a creator who never answered does not end the meeting).
    answered: set[str] = field(default_factory=set)
    #: The last talkers each node reported (a spanning meeting reports their union).
    talkers: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def home(self) -> int | None:
        return self.nodes[0] if self.nodes else None

    def add_leg(self, leg_id: str, node: int) -> None:
        previous = self.legs.get(leg_id)
        if previous is not None:
            self.per_node[previous] -= 1
        self.legs[leg_id] = node
        self.per_node[node] += 1

    def end_leg(self, leg_id: str) -> int | None:
        """Forget a leg that ended; the node it was on, or None if it was not live."""
        node = self.legs.pop(leg_id, None)
        if node is not None:
            self.per_node[node] -= 1
            if self.per_node[node] <= 0:
                del self.per_node[node]
        self.answered.discard(leg_id)
        return node

    def drop_node(self, node: int) -> list[str]:
        """A node died: it no longer carries the meeting; the legs it had (they are over)."""
        if node in self.nodes:
            self.nodes.remove(node)
        gone = [leg for leg, where in self.legs.items() if where == node]
        for leg in gone:
            self.end_leg(leg)
        self.talkers.pop(node, None)
        return gone

    @property
    def empty(self) -> bool:
        """Someone answered and no leg is live any more: the meeting is over here."""
        return self.joined and not self.legs
