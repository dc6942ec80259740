"""The listening sockets, made and held by Gunicorn's master: one ``SO_REUSEPORT``
socket per worker slot, so that the kernel spreads connections over the workers.

Gunicorn's own ``reuse_port`` lets each worker bind its socket after fork. Then a
replacement worker (recycled, crashed, reloaded) opens a new socket before its model has
loaded, and the connections queued at the one that exits are reset; and any other
process on the machine can bind the same port and silently take a share of the traffic.
Here the master binds the sockets once, checks first that nobody else listens on the
address (at start-up: a process of the same user that binds the port later with
SO_REUSEPORT still joins the group), and hands each worker the socket of its slot: a
replacement inherits the same socket and its queue."""

from __future__ import annotations

import errno
import mmap
import socket
from collections.abc import Iterable

# A slot's count before its worker serves (booting, or gone): not compared.
NOT_SERVING = -1


class AddressInUse(Exception):
    """Another process listens on the address (another server, or another program)."""


class CannotListen(OSError):
    """The address cannot be listened at (a name that does not resolve, an address not
    on this machine): the OS error, with the address it was about. Bare, it was a line
    such as "[Errno 99] Cannot assign requested address" (an outside probe). The
    settings check refuses these first (``app.config``); this is for an address that
    changed in between."""


class ListenerGroup:
    """One address: ``slots`` sockets in one SO_REUSEPORT group. Gunicorn's master keeps
    it in its LISTENERS (it logs it, and closes it on shutdown)."""

    def __init__(self, address: tuple[str, int], slots: int, backlog: int):
        self.family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address = address[:2]
        self.sockets: list[socket.socket] = []
        try:
            _check_free(self.family, address)
            for _ in range(slots):
                sock = socket.socket(self.family, socket.SOCK_STREAM)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Gunicorn
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
                sock.set_inheritable(True)
                # Port 0 (refused by the settings check): the other slots join the port the
                # first one got, not a random port each that nobody is told about.
                address = (*address[:1], sock.getsockname()[1], *address[2:])
        except AddressInUse:
            self.close()
            raise
        except OSError as error:
            self.close()
            if error.errno == errno.EADDRINUSE:
                raise AddressInUse(_in_use(address)) from error
            raise CannotListen(_cannot_listen(address, error)) from error
        self.address = self.sockets[0].getsockname()[:2]

    def __str__(self) -> str:
        host, port = self.address
        return (
            f"http://[{host}]:{port}" if self.family == socket.AF_INET6 else f"http://{host}:{port}"
        )

    def getsockname(self) -> tuple[str, int]:
        return self.address

    def fileno(self) -> int:
        return self.sockets[0].fileno()

    def get_backlog(self) -> int:
        return -1

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _check_free(family: int, address: tuple[str, int]) -> None:
    """Bind the address without SO_REUSEPORT, for a moment: it fails if any socket
    listens there, whether or not it would let us join its SO_REUSEPORT group."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUse(_in_use(address)) from error
            raise


def _cannot_listen(address: tuple[str, int], error: OSError) -> str:
    host, port = address[:2]
    if isinstance(error, socket.gaierror):
        return f"cannot listen at {host}:{port}: {host!r} does not resolve ({error.strerror})"
    return f"cannot listen at {host}:{port}: {error.strerror or error}"


def _in_use(address: tuple[str, int]) -> str:
    host, port = address[:2]
    return (
        f"cannot listen at {host}:{port}: the address is in use by another process "
        "(another server, or another program)"
    )


def open_groups(addresses: Iterable, slots: int, backlog: int) -> list[ListenerGroup]:
    """A group per address (TCP only: Gunicorn's ``bind`` as host:port)."""
    groups: list[ListenerGroup] = []
    try:
        for address in addresses:
            if not isinstance(address, tuple):
                raise ValueError(f"bind {address!r}: only host:port addresses are supported")
            groups.append(ListenerGroup(address, slots, backlog))
    except BaseException:
        for group in groups:
            group.close()
        raise
    return groups


class SlotConnections:
    """How many connections the worker of each slot holds, in memory that the master
    maps before it forks, so that every worker reads the others' counts (each writes only
    its own). The kernel spreads new connections over the slots' sockets by a hash of
    their addresses, so a few long-lived keep-alive connections often land unevenly (16
    of wrk's: 12 and 4 in two rounds of 14, 8 and 8 in one); a worker that holds clearly
    more than another closes a connection after its next response, and the client's new
    connection is spread again (``BufferingWorker.handle_request``)."""

    def __init__(self, slots: int):
        self._memory = mmap.mmap(-1, 8 * slots)  # shared and anonymous: inherited by fork
        self.counts = memoryview(self._memory).cast("q")
        for slot in range(slots):
            self.counts[slot] = NOT_SERVING

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections a serving worker of another slot holds (None: none)."""
        return min(
            (count for index, count in enumerate(self.counts) if index != slot and count >= 0),
            default=None,
        )


def assign_slot(groups: list[ListenerGroup], siblings: Iterable, worker) -> None:
    """In the master, before fork: give ``worker`` the slot with the fewest live workers
    (a free one when replacing a dead worker; during a reload the new worker shares the
    slot with the old one it replaces, which drains its queue and leaves)."""
    slots = len(groups[0].sockets)
    used = [0] * slots
    for sibling in siblings:
        if getattr(sibling, "slot", None) is not None and sibling.slot < slots:
            used[sibling.slot] += 1
    worker.slot = min(range(slots), key=lambda i: (used[i], i))
    worker.sockets = [group.sockets[worker.slot] for group in groups]


def close_other_slots(groups: list[ListenerGroup], worker) -> None:
    """In the worker, after fork: drop its copies of the other slots' sockets."""
    for group in groups:
        for index, sock in enumerate(group.sockets):
            if index != worker.slot:
                sock.close()
