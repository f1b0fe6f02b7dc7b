#!/usr/bin/env python3
"""The orders service as it runs today (the baseline of the worked example
in docs/experiments.md). Python standard library only.

    python3 baseline.py --listen 127.0.0.1:8080

GET  /healthz                           ok
GET  /v1/orders/{id}                    one order
GET  /v1/orders/search?customer=N       a customer's orders
POST /v1/orders                         create: {"id": "...", "customer": N, "items": [{"sku": "...", "qty": N}]}
GET  /metrics                           process_cpu_seconds_total, process_resident_memory_bytes
"""

import argparse
import json
import os
import resource
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def order(order_id):
    items = [
        {"sku": f"sku-{(order_id * 7 + k) % 50}", "qty": k + 1,
         "price": ((order_id * 7 + k * 13) % 2000) / 100}
        for k in range(order_id % 3 + 1)
    ]
    total = round(sum(i["price"] * i["qty"] for i in items), 2)
    return {"id": order_id, "customer": order_id % 97, "status": "shipped",
            "items": items, "total": total}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer, sent at once: unbuffered writes of head and body
    # meet Nagle and delayed ACKs (40 ms per keep-alive request).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if url.path == "/healthz":
            self.answer(200, {"status": "ok"})
        elif url.path == "/metrics":
            usage = resource.getrusage(resource.RUSAGE_SELF)
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            text = (f"process_cpu_seconds_total {usage.ru_utime + usage.ru_stime}\n"
                    f"process_resident_memory_bytes {rss}\n")
            self.answer(200, text.encode(), "text/plain; version=0.0.4")
        elif url.path == "/v1/orders/search":
            customer = int(parse_qs(url.query).get("customer", ["0"])[0])
            ids = [customer + 97 * k for k in range(3)]
            self.answer(200, {"customer": customer, "orders": [order(i) for i in ids]})
        elif len(parts) == 3 and parts[:2] == ["v1", "orders"] and parts[2].isdigit():
            self.answer(200, order(int(parts[2])))
        else:
            self.answer(404, {"code": "not_found", "message": url.path})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        try:
            body = json.loads(self.rfile.read(length))
            total = round(sum(10.0 * i["qty"] for i in body["items"]), 2)
            self.answer(201, {"id": body["id"], "customer": body["customer"],
                              "status": "created", "total": total})
        except (ValueError, KeyError, TypeError) as e:
            self.answer(400, {"code": "invalid_order", "message": str(e)})

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1:8080")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(f"listening on {host}:{server.server_port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
