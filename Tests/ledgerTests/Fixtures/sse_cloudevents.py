#!/usr/bin/env python3
"""Subscribes to a ledger server with the standard library, and turns every Server-Sent Events
message into a CloudEvent with the CloudEvents Python SDK (PyPI `cloudevents`), which validates
its attributes. Stops after COUNT events; prints a JSON summary.

usage: sse_cloudevents.py URL TOKEN COUNT
"""
import http.client
import json
import sys
import urllib.parse

from cloudevents.core.formats.json import JSONFormat


def main():
    url, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""), headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
        return 1
    if not response.getheader("Content-Type", "").startswith("text/event-stream"):
        print(json.dumps({"error": "content type " + str(response.getheader("Content-Type"))}))
        return 1
    fmt = JSONFormat()
    events, problems, types, previous = 0, [], set(), -1
    block = {}
    while events < count:
        raw = response.fp.readline()
        if not raw:
            problems.append("the stream ended after %d events" % events)
            break
        line = raw.decode("utf-8").rstrip("\n")
        if line == "":
            if "data" in block and block.get("event") != "lagging":
                event = fmt.read(None, block["data"])  # validates every attribute
                offset = int(block["id"])
                attrs = event.get_attributes()
                if event.get_specversion() != "1.0":
                    problems.append("specversion %s" % event.get_specversion())
                if event.get_type() != block.get("event"):
                    problems.append("event line %s but type %s" % (block.get("event"), event.get_type()))
                if attrs.get("ledgeroffset") != offset:
                    problems.append("id %d but ledgeroffset %s" % (offset, attrs.get("ledgeroffset")))
                if offset != previous + 1 and previous >= 0:
                    problems.append("offset %d after %d" % (offset, previous))
                if not isinstance(event.get_data(), dict):
                    problems.append("data of %d is not an object" % offset)
                if event.get_time() is None or event.get_time().tzinfo is None:
                    problems.append("time of %d" % offset)
                previous = offset
                types.add(event.get_type())
                events += 1
            block = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        block[key] = block.get(key, "") + value if key == "data" else value
    print(json.dumps({"events": events, "last": previous, "types": sorted(types), "problems": problems[:20]}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
