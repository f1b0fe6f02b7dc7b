#!/usr/bin/env python3
"""Sends gRPC calls with Python's grpcio (gRPC's C core): a client nobody in
this repository wrote, for the twins' conformance and proxy tests.

    grpc-send.py [--cacert FILE --authority NAME] [--server-stream]
                 HOST:PORT /package.Service/Method < calls

Each line of stdin is `NAME HEX`: the request message's bytes in hex, sent
as they are (no generated code; grpcio frames them). Each call prints one
line: NAME, the status code's name, the details (JSON-quoted), the
parallax-error-code and grpc-retry-pushback-ms trailers (`-` when absent)
and the response message in hex (`-` when none). With --server-stream the
method is server-streaming: the last field lists every response message in
hex, joined by `,` (`-` when none). With --cacert the channel is TLS, the
server's certificate checked against FILE for the name --authority.
"""
import argparse
import json
import sys

import grpc

TRAILERS = ("parallax-error-code", "grpc-retry-pushback-ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cacert")
    parser.add_argument("--authority")
    parser.add_argument("--server-stream", action="store_true")
    parser.add_argument("addr")
    parser.add_argument("method")
    args = parser.parse_args()
    options = [("grpc.max_receive_message_length", 16 << 20)]
    if args.cacert:
        with open(args.cacert, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        if args.authority:
            options.append(("grpc.ssl_target_name_override", args.authority))
        channel = grpc.secure_channel(args.addr, credentials, options=options)
    else:
        channel = grpc.insecure_channel(args.addr, options=options)
    with channel:
        if args.server_stream:
            call = channel.unary_stream(args.method)  # bytes in, bytes out
        else:
            call = channel.unary_unary(args.method)
        for line in sys.stdin:
            if not line.strip():
                continue
            name, _, hexed = line.strip().partition(" ")
            message = bytes.fromhex(hexed)
            responses = []
            if args.server_stream:
                # The messages that came before an error status are kept.
                stream = call(message, timeout=30)
                try:
                    for response in stream:
                        responses.append(response)
                except grpc.RpcError:
                    pass
                code, details, trailers = stream.code(), stream.details(), stream.trailing_metadata()
            else:
                try:
                    response, info = call.with_call(message, timeout=30)
                    responses = [response]
                    code, details, trailers = info.code(), info.details(), info.trailing_metadata()
                except grpc.RpcError as e:
                    code, details, trailers = e.code(), e.details(), e.trailing_metadata()
            found = dict(trailers or ())
            shown = ",".join(r.hex() for r in responses if r) if args.server_stream else (
                responses[0].hex() if responses and responses[0] else "-")
            print(
                name,
                code.name,
                json.dumps(details or ""),
                *(found.get(k, "-") for k in TRAILERS),
                shown or "-",
                flush=True,
            )


if __name__ == "__main__":
    main()
