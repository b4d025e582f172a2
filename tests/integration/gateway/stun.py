"""A STUN server of a few lines (binding requests only) for the browser test: the page and the
gateway are given it as their ICE servers, and the test checks both asked it, so the configured list
reached each peer connection. A real deployment gives them coturn (docs/operations.md, "TURN")."""

from __future__ import annotations

import asyncio

from aioice import stun


class StunServer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.asked_by: set[tuple[str, int]] = set()  # who sent binding requests

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        if request.message_method != stun.Method.BINDING or request.message_class != stun.Class.REQUEST:
            return
        self.asked_by.add(addr[:2])
        response = stun.Message(
            stun.Method.BINDING,
            stun.Class.RESPONSE,
            transaction_id=request.transaction_id,
            attributes={"XOR-MAPPED-ADDRESS": addr[:2]},
        )
        response.add_fingerprint()
        assert self.transport is not None
        self.transport.sendto(bytes(response), addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]


async def start_stun_server() -> StunServer:
    loop = asyncio.get_running_loop()
    _, server = await loop.create_datagram_endpoint(StunServer, local_addr=("127.0.0.1", 0))
    return server
