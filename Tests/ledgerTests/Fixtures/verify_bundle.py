#!/usr/bin/env python3
"""Checks a Platform Ledger evidence bundle using only Schemas/proofs.md and Schemas/hashing.md.

usage: verify_bundle.py BUNDLE.json VERIFIER-KEY [TRUSTED-CHECKPOINT.note]
Exit 0 and "ok N events a-b in checkpoint S" when every check holds; exit 1 and "bad: <why>".
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verify_export import canonical


class Bad(Exception):
    pass


def sha(b):
    return hashlib.sha256(b).digest()


def leaf(event_hash_hex):
    return sha(b"\x00" + bytes.fromhex(event_hash_hex))


def node(left, right):
    return sha(b"\x01" + left + right)


def verify_inclusion(m, n, leaf_hash, proof, root):
    if m >= n:
        return False
    fn, sn, r = m, n - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, root_m, root_n, proof):
    if m == n:
        return not proof and root_m == root_n
    if m == 0 or m > n or not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root_m and sr == root_n and sn == 0


def parse_key(text):
    name, key_id, blob = text.strip().split("+", 2)
    raw = base64.b64decode(blob)
    if len(raw) != 33 or raw[0] != 1:
        raise Bad("the verifier key is not an Ed25519 note key")
    if sha(name.encode() + b"\n\x01" + raw[1:])[:4].hex() != key_id:
        raise Bad("the verifier key's id does not match its name and key")
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def parse_checkpoint(note, key):
    name, key_id, public = key
    if "\n\n" not in note:
        raise Bad("the checkpoint note has no blank line")
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    lines = body.split("\n")[:-1]
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    signed = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Bad("a signature line does not start with an em dash")
        who, blob = line[2:].split(" ")
        raw = base64.b64decode(blob)
        if who == name and raw[:4] == key_id:
            try:
                public.verify(raw[4:], body.encode())
                signed = True
            except InvalidSignature:
                pass
    if not signed:
        raise Bad(f"the checkpoint of size {size} is not signed by {name}")
    extensions = dict(l.split(" ", 1) for l in lines[3:] if " " in l)
    return origin, size, root, extensions


def check(bundle, key, trusted_note=None):
    if bundle.get("format") != "platform-ledger-evidence/1":
        raise Bad("not a platform-ledger-evidence/1 bundle")
    origin, size, root, ext = parse_checkpoint(bundle["checkpoint"], key)
    first, last = bundle["range"]["first"], bundle["range"]["last"]
    if last >= size:
        raise Bad(f"the range ends at {last}, beyond the checkpoint's {size} events")
    events = bundle["events"]
    if len(events) != last - first + 1:
        raise Bad(f"{len(events)} events for offsets {first}-{last}")
    previous = None
    for i, item in enumerate(events):
        offset = first + i
        if item["offset"] != offset:
            raise Bad(f"event {i} is not at offset {offset}: removed or reordered")
        envelope = json.loads(item["event"])
        if envelope["offset"] != offset:
            raise Bad(f"offset {offset}: the envelope says offset {envelope['offset']}")
        claimed = envelope.pop("hash")
        if hashlib.sha256(canonical(envelope).encode("utf-8")).hexdigest() != claimed:
            raise Bad(f"offset {offset}: the hash is not the SHA-256 of the event: altered")
        if previous is not None and envelope["prevHash"] != previous:
            raise Bad(f"offset {offset}: prevHash is not the hash of offset {offset - 1}: chain broken")
        proof = [bytes.fromhex(h) for h in item["inclusion"]]
        if not verify_inclusion(offset, size, leaf(claimed), proof, root):
            raise Bad(f"offset {offset}: the inclusion proof does not reach the checkpoint root")
        if offset == size - 1 and ext.get("head", claimed) != claimed:
            raise Bad("the checkpoint's head is not its last event's hash")
        previous = claimed
    if trusted_note is not None:
        t_origin, t_size, t_root, _ = parse_checkpoint(trusted_note, key)
        if t_origin != origin:
            raise Bad("the trusted checkpoint is of another log")
        if t_size > size:
            raise Bad(f"the trusted checkpoint has {t_size} events, more than {size}: truncated")
        if t_size == size:
            if t_root != root:
                raise Bad("two checkpoints of the same size with different roots: rewritten")
        else:
            c = bundle.get("consistency")
            if not c or c["first"] != t_size:
                raise Bad(f"no consistency proof from the trusted size {t_size}")
            if not verify_consistency(t_size, size, t_root, root, [bytes.fromhex(h) for h in c["proof"]]):
                raise Bad(f"the checkpoint of {size} events does not extend the trusted one of {t_size}: rewritten")
    return first, last, size


def main(argv):
    with open(argv[1], encoding="utf-8") as f:
        bundle = json.load(f)
    key_text = argv[2]
    try:
        with open(key_text, encoding="utf-8") as f:
            key_text = f.read()
    except OSError:
        pass
    trusted = None
    if len(argv) > 3:
        with open(argv[3], encoding="utf-8") as f:
            trusted = f.read()
    try:
        first, last, size = check(bundle, parse_key(key_text), trusted)
    except Bad as e:
        print(f"bad: {e}")
        return 1
    print(f"ok {last - first + 1} events {first}-{last} in checkpoint {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
