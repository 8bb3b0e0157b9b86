"""Who is calling: the peer address, X-Forwarded-For from trusted proxies, IP whitelists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str | Iterable[str]) -> list[Network]:
    """Comma-separated IPs and CIDRs (or a list of them); entries that do not parse are dropped."""
    items = spec.split(",") if isinstance(spec, str) else spec
    networks: list[Network] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    return networks


def invalid_entries(spec: str) -> list[str]:
    """The entries of a whitelist that are neither an IP nor a CIDR (for the CLI to refuse)."""
    bad = []
    for item in spec.split(","):
        item = item.strip()
        if item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                bad.append(item)
    return bad


def address_in(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The caller's address: the TCP peer, unless that is a trusted proxy.

    Behind trusted proxies, walk X-Forwarded-For from the right and take the first address that
    is not itself a trusted proxy; a client cannot spoof what our own proxies appended.
    """
    if not forwarded_for or not address_in(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not address_in(hop, trusted):
            return hop
    return hops[0] if hops else peer
