"""The pushes' own HTTP/1.1 client against a scripted loopback server: keep-alive, the answers
HTTP allows (chunked, interim, close-delimited), connections the receiver closes, bad answers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable

import pytest

from telemeeting.callbacks.http import ConnectionClosed, PushClient, PushError, parse_target

Answer = Callable[[bytes], bytes | None]  # the request head and body -> raw answer (None: close)


class Scripted:
    """Answers each request with the next function of `answers` (the last one repeats)."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1](request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower() or answer.startswith(b"HTTP/1.0"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(_request: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[Answer]], asyncio.Future[Scripted]]]:
    servers: list[asyncio.Server] = []

    async def start(answers: list[Answer]) -> Scripted:
        scripted = Scripted(answers)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return scripted

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


@pytest.fixture
async def client() -> AsyncIterator[PushClient]:
    running = PushClient("test-agent/1", 5.0)
    yield running
    await running.aclose()


def url(server: Scripted, path: str = "/cb/ytx?CallState") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def test_posts_on_one_kept_alive_connection(serve, client: PushClient) -> None:
    server = await serve([ok])
    body = '{"state":"answer","name":"张三"}'.encode()
    for _ in range(3):
        assert await client.post(url(server), body, {"X-Telemeeting-Seq": "7"}) == 200
    assert server.connections == 1 and len(server.requests) == 3
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /cb/ytx?CallState HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"User-Agent: test-agent/1" in lines and b"X-Telemeeting-Seq: 7" in lines
    assert f"Content-Length: {len(body)}".encode() in lines and sent == body


async def test_answers_that_end_the_connection_are_not_reused(serve, client: PushClient) -> None:
    closing = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    server = await serve([lambda _: closing, ok])
    assert await client.post(url(server), b"{}", {}) == 503
    assert await client.post(url(server), b"{}", {}) == 200
    assert server.connections == 2


async def test_chunked_interim_and_close_delimited_answers(serve, client: PushClient) -> None:
    chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    until_close = b"HTTP/1.0 202 Accepted\r\n\r\nwhatever follows, until the end"
    server = await serve([lambda _: chunked, lambda _: interim, lambda _: until_close, ok])
    assert await client.post(url(server), b"{}", {}) == 201
    assert await client.post(url(server), b"{}", {}) == 204
    assert server.connections == 1
    assert await client.post(url(server), b"{}", {}) == 202
    assert await client.post(url(server), b"{}", {}) == 200
    assert server.connections == 2


async def test_an_idle_connection_the_receiver_closed_is_replaced(
    serve, client: PushClient
) -> None:
    server = await serve([ok])
    assert await client.post(url(server), b"{}", {}) == 200
    server.writers[0].close()  # the receiver's keep-alive timeout
    await asyncio.sleep(0.05)
    assert await client.post(url(server), b"{}", {}) == 200
    assert server.connections == 2


async def test_a_kept_connection_closed_as_we_send_is_tried_once_more(
    serve, client: PushClient
) -> None:
    server = await serve([ok, lambda _: None, ok])  # closes instead of answering the second
    assert await client.post(url(server), b"{}", {}) == 200
    assert await client.post(url(server), b"{}", {}) == 200
    assert server.connections == 2 and len(server.requests) == 3


async def test_no_answer_and_bad_answers_are_errors(serve, client: PushClient) -> None:
    server = await serve([lambda _: None])
    with pytest.raises(ConnectionClosed):
        await client.post(url(server), b"{}", {})
    garbage = await serve([lambda _: b"SMTP ready\r\n\r\n"])
    with pytest.raises(PushError):
        await client.post(url(garbage), b"{}", {})
    with pytest.raises(OSError):
        await client.post("http://127.0.0.1:9/cb", b"{}", {})  # nothing listens on port 9


async def test_an_answer_cut_by_the_timeout_leaves_no_connection_behind(
    serve, client: PushClient
) -> None:
    slow = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"  # 7 bytes never come
    server = await serve([lambda _: slow, ok])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.post(url(server), b"{}", {})
    assert await client.post(url(server), b"{}", {}) == 200
    assert server.connections == 2


def test_targets_are_sent_as_httpx_would() -> None:
    target = parse_target("https://user:p%40ss@例え.jp/a b/ü?x=1&CallState")
    assert target.tls and target.port == 443 and target.host == "xn--r8jz45g.jp"
    assert target.origin == "https://xn--r8jz45g.jp:443"
    lines = target.head.decode().split("\r\n")
    assert lines[0] == "POST /a%20b/%C3%BC?x=1&CallState HTTP/1.1"
    assert lines[1] == "Host: xn--r8jz45g.jp"
    assert lines[2] == "Authorization: Basic " + base64.b64encode(b"user:p@ss").decode()
    six = parse_target("http://[::1]:8080/cb?Call")
    assert six.host == "::1" and six.port == 8080 and b"Host: [::1]:8080\r\n" in six.head
    with pytest.raises(PushError):
        parse_target("ftp://example.com/cb")
