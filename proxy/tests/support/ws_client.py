"""A third-party WebSocket client (the `websockets` package) for the proxy's
tests: subscribes at URL, prints the subscription frame, then COUNT more
frames, one per line; once a line arrives on stdin, sends a subscribe op and
prints the answer; closes normally and prints `closed <code>`. A wss:// URL
trusts the PEM CA file given as a third argument."""

import asyncio
import ssl
import sys

from websockets.asyncio.client import connect


async def main(url: str, count: int, cafile: str | None) -> None:
    tls = ssl.create_default_context(cafile=cafile) if cafile else None
    async with connect(url, open_timeout=10, ssl=tls) as ws:
        print(await asyncio.wait_for(ws.recv(), 10), flush=True)
        for _ in range(count):
            print(await asyncio.wait_for(ws.recv(), 10), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await ws.send('{"op":"subscribe","topics":["other"]}')
        print(await asyncio.wait_for(ws.recv(), 10), flush=True)
    print("closed", ws.close_code, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
