#!/usr/bin/env python3
"""Verifies a `ledger read` export using only Schemas/hashing.md (no ledger code).

usage: verify_export.py EXPORT.ndjson
Exit 0 and "ok N events, head <hash>" when every hash and the whole chain check out;
exit 1 and "bad offset N: <why>" at the first failure.
"""
import hashlib
import json
import math
import sys


def es_number(x):
    """ECMAScript Number.prototype.toString of a double (hashing.md section 2, rule 4)."""
    if isinstance(x, int):
        if abs(x) < 2**53:
            return str(x)
        x = float(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and infinities are not JSON numbers")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest digits that read back as the same double.
    text = repr(abs(x))
    mantissa, _, exponent = text.partition("e")
    exp10 = int(exponent) if exponent else 0
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    n = point + exp10  # value = 0.digits × 10^n
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return sign + head + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def canonical(value):
    """RFC 8785 serialisation (hashing.md section 2)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return es_number(value)
    if isinstance(value, str):
        # json.dumps escapes exactly ", \\, and control characters (lowercase \\u00xx, short forms).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k]) for k in keys) + "}"
    raise TypeError(type(value))


def main(path):
    previous = None
    count = 0
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            envelope = json.loads(line)
            offset = envelope.get("offset")
            claimed = envelope.pop("hash", None)
            if previous is None:
                previous = envelope["prevHash"] if offset != 0 else "0" * 64
                first = offset
            if offset != first + count:
                print(f"bad offset {offset}: expected offset {first + count} (line {line_number})")
                return 1
            digest = hashlib.sha256(canonical(envelope).encode("utf-8")).hexdigest()
            if digest != claimed:
                print(f"bad offset {offset}: hash {claimed} is not the SHA-256 of the envelope ({digest})")
                return 1
            if envelope["prevHash"] != previous:
                print(f"bad offset {offset}: prevHash {envelope['prevHash']} is not the hash of the event before ({previous})")
                return 1
            previous = claimed
            count += 1
    print(f"ok {count} events, head {previous}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
