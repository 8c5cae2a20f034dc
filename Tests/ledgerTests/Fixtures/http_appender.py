#!/usr/bin/env python3
"""Appends events to a ledger server from THREADS threads over keep-alive connections (the
standard library's http.client), one request of 1-3 events at a time, until it is killed or the
server goes away. Prints "OFFSET ID" for every event the server acknowledged (200), as soon as
it is acknowledged.

usage: http_appender.py HOST PORT TOKEN PREFIX THREADS
"""
import http.client
import json
import sys
import threading
import uuid

lock = threading.Lock()


def run(host, port, token, prefix, worker):
    n = 0
    conn = None
    while True:
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=30)
            k = 1 + (n % 3)
            events = []
            for i in range(k):
                job = "%s-%d-%d-%d" % (prefix, worker, n, i)
                events.append({"id": str(uuid.uuid4()), "stream": "job-" + job, "type": "job.queued",
                               "data": {"job": job, "team": "vision", "gpuType": "a100", "gpus": 1, "priority": 0}})
            n += 1
            body = json.dumps({"events": events})
            conn.request("POST", "/v1/append", body=body,
                         headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
            response = conn.getresponse()
            text = response.read()
            if response.status == 200:
                results = json.loads(text)["results"]
                with lock:
                    for r in results:
                        sys.stdout.write("%d %s\n" % (r["offset"], r["id"]))
                    sys.stdout.flush()
            elif response.status not in (503,):
                sys.stderr.write("status %d: %s\n" % (response.status, text[:200]))
                return
        except (ConnectionError, http.client.HTTPException, OSError):
            return


def main():
    host, port, token, prefix, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    workers = [threading.Thread(target=run, args=(host, port, token, prefix, w)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
