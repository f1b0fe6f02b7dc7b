#!/usr/bin/env python3
"""Sends HTTP requests with Python's own http.client: a client Parallax did not write.

Usage: http-send.py HOST:PORT < requests.jsonl > answers.jsonl

Each input line is {"method", "path", "headers": [[name, value], ...],
"body_b64", "chunked"}; each output line is {"status", "headers":
[[name, value], ...], "body_b64"} or {"error": "..."} when the exchange
failed. One connection per request, so a hostile request cannot disturb
the next.
"""
import base64
import http.client
import json
import sys


def send(host, port, req):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        body = base64.b64decode(req.get("body_b64", ""))
        headers = {}
        conn.putrequest(req["method"], req["path"], skip_accept_encoding=True)
        for name, value in req.get("headers", []):
            conn.putheader(name, value)
            headers[name.lower()] = value
        chunked = req.get("chunked", False)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif "content-length" not in headers and (body or req["method"] in ("POST", "PUT", "PATCH")):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        if chunked:
            if body:
                conn.send(b"%x\r\n%s\r\n" % (len(body), body))
            conn.send(b"0\r\n\r\n")
        elif body:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        return {
            "status": resp.status,
            "headers": [[k.lower(), v] for k, v in resp.getheaders()],
            "body_b64": base64.b64encode(data).decode(),
        }
    except Exception as e:  # the caller decides what a failed exchange means
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(send(host, int(port), json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
