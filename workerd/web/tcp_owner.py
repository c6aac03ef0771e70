"""Which local user holds the other end of a TCP connection to the daemon, from
/proc/net/tcp and tcp6: every local user reaches a loopback listener from the same
address, so only the socket's owner tells them apart (the console caps streams per user)."""

from __future__ import annotations

import ipaddress
import sys


def tcp_owner(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid of the socket at PEER connected to LOCAL; None when it is not on this host
    (a remote client) or cannot be read."""
    try:
        peer, local = _unmapped(peer), _unmapped(local)
        family = "tcp" if ipaddress.ip_address(peer[0]).version == 4 else "tcp6"
        wanted = (_proc_address(*peer), _proc_address(*local))
        with open(f"/proc/net/{family}", encoding="ascii") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                if (fields[1], fields[2]) == wanted:
                    return int(fields[7])
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return None


def _unmapped(address: tuple[str, int]) -> tuple[str, int]:
    """An IPv4 client of an IPv6 listener (::ffff:127.0.0.1) as its own socket has it."""
    mapped = getattr(ipaddress.ip_address(address[0].partition("%")[0]), "ipv4_mapped", None)
    return address if mapped is None else (str(mapped), address[1])


def _proc_address(host: str, port: int) -> str:
    """HOST:PORT as /proc/net/tcp writes it: each 32-bit word of the address in the host's
    byte order, then the port, in upper-case hex."""
    packed = ipaddress.ip_address(host.partition("%")[0]).packed
    order = -1 if sys.byteorder == "little" else 1
    words = b"".join(packed[i:i + 4][::order] for i in range(0, len(packed), 4))
    return f"{words.hex().upper()}:{port:04X}"
