"""IngestService/Publish answering accepted = events + 1: a planted
difference for the gRPC experiment test (grpcio, no generated code)."""
import sys
from concurrent import futures

import grpc


def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def events(batch):
    i = n = 0
    while i < len(batch):
        key, i = varint(batch, i)
        if key & 7 != 2:
            raise ValueError("EventBatch holds only length-delimited events")
        length, i = varint(batch, i)
        i += length
        n += key >> 3 == 1
    return n


def publish(request, context):
    n = events(request) + 1
    out = bytearray([0x08])
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "parallax.ingest.v1.IngestService",
    {"Publish": grpc.unary_unary_rpc_method_handler(publish)},
),))
server.add_insecure_port(sys.argv[1])
server.start()
print("listening on", sys.argv[1], flush=True)
server.wait_for_termination()
