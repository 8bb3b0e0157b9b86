"""An answer's header block and body leave in one write (api/coalesce.py), through uvicorn's
real httptools cycle on a loopback socket; HEAD answers and `100 Continue` are not held back."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.inprocess_http import read_until, serving


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b'{"statusCode":"0","echo":%d}' % len(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _exchange() -> tuple[list[bytes], list[bytes]]:
    writes: list[bytes] = []
    answers: list[bytes] = []
    async with serving(_app, writes) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Two requests on one kept-alive connection: one write each.
        for _ in range(2):
            writer.write(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}")
            answers.append(await read_until(reader, b"}"))
        # HEAD: uvicorn writes no body, so the held header block must still leave.
        writer.write(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
        answers.append(await read_until(reader, b"\r\n\r\n"))
        # Expect: 100-continue: the interim answer arrives before the body is sent.
        writer.write(
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        answers.append(await read_until(reader, b"\r\n\r\n"))
        writer.write(b"hello")
        answers.append(await read_until(reader, b"}"))
        writer.close()
    return writes, answers


def test_each_answer_is_one_write_and_nothing_is_held_back() -> None:
    writes, answers = asyncio.run(_exchange())
    first, second, head, interim, after_continue = answers
    for answer in (first, second):
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b'\r\n\r\n{"statusCode":"0","echo":2}')
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert after_continue.endswith(b'{"statusCode":"0","echo":5}')
    # The two POSTs: one write each, holding status line, headers and body together.
    assert writes[0] == first and writes[1] == second
    # HEAD: its header block alone; then the interim answer, then the last answer.
    assert writes[2] == head
    assert writes[3] == interim
    assert b"".join(writes[4:]).endswith(after_continue)
