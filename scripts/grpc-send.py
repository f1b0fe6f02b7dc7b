#!/usr/bin/env python3
"""Sends unary gRPC calls with Python's grpcio (gRPC's C core): a client
nobody in this repository wrote, for the ingest twins' conformance tests.

    grpc-send.py HOST:PORT /package.Service/Method < calls

Each line of stdin is `NAME HEX`: the request message's bytes in hex, sent
as they are (no generated code; grpcio frames them). Each call prints one
line: NAME, the status code's name, the details (JSON-quoted), the
parallax-error-code and grpc-retry-pushback-ms trailers (`-` when absent)
and the response message in hex (`-` when none).
"""
import json
import sys

import grpc

TRAILERS = ("parallax-error-code", "grpc-retry-pushback-ms")


def main() -> None:
    addr, method = sys.argv[1], sys.argv[2]
    options = [("grpc.max_receive_message_length", 16 << 20)]
    with grpc.insecure_channel(addr, options=options) as channel:
        call = channel.unary_unary(method)  # bytes in, bytes out
        for line in sys.stdin:
            if not line.strip():
                continue
            name, _, hexed = line.strip().partition(" ")
            message = bytes.fromhex(hexed)
            try:
                response, info = call.with_call(message, timeout=30)
                code, details, trailers = info.code(), info.details(), info.trailing_metadata()
            except grpc.RpcError as e:
                response = None
                code, details, trailers = e.code(), e.details(), e.trailing_metadata()
            found = dict(trailers or ())
            print(
                name,
                code.name,
                json.dumps(details or ""),
                *(found.get(k, "-") for k in TRAILERS),
                response.hex() if response else "-",
            )


if __name__ == "__main__":
    main()
