#!/usr/bin/env python3
"""Independent check of AgentMesh's published wire vectors.

Written from docs/wire/identity.md and docs/wire/delegation.md alone, with
PyPI's `cryptography` for Ed25519 and hashlib for SHA-256, so the Rust code
and the spec are checked against a second implementation. Exits non-zero on
the first disagreement.
"""
import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = Path(__file__).resolve().parents[2]
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
checks = 0


def ok(cond, what):
    global checks
    checks += 1
    if not cond:
        sys.exit(f"FAIL: {what}")


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def did_of(pk: bytes) -> str:
    return "did:mesh:z" + b58encode(b"\xed\x01" + pk)


def pub_from_seed(seed_hex: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify(pk: bytes, domain: str, msg: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, domain.encode() + b"\0" + msg)
        return True
    except InvalidSignature:
        return False


def check_identity():
    v = json.loads((ROOT / "docs/wire/vectors/identity.json").read_text())
    for k in v["keys"]:
        pk = pub_from_seed(k["seed"])
        ok(pk.hex() == k["public_key"], "public key from seed")
        ok(did_of(pk) == k["did_mesh"], "did:mesh from key")
        ok("did:key:" + k["did_mesh"].split(":", 2)[2] == k["did_key"], "did:key spelling")
        if "jwk" in k:
            ok(k["jwk"]["kty"] == "OKP" and k["jwk"]["crv"] == "Ed25519", "JWK type")
            ok(k["jwk"]["x"] == b64url(pk), "JWK x")
            vm = k["did_document"]["verificationMethod"][0]
            ok(vm["type"] == "Multikey", "Multikey type")
            ok(vm["publicKeyMultibase"] == k["did_mesh"].split(":", 2)[2], "publicKeyMultibase")
    s = v["sponsorship"]
    att = dict(s["attestation"])
    sig = unb64url(att.pop("signature"))
    canonical = json.dumps(att, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ok(canonical == s["canonical_json"], "sponsorship canonical JSON is sorted-key compact JSON")
    sponsor_pk = base58_did_key(att["sponsor_did"])
    ok(verify(sponsor_pk, s["domain"], canonical.encode(), sig), "sponsorship signature")


def base58_did_key(did: str) -> bytes:
    msid = did.split(":", 2)[2]
    assert msid[0] == "z"
    n = 0
    for ch in msid[1:]:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes(34, "big")
    assert raw[:2] == b"\xed\x01"
    return raw[2:]


def parse_token(text: str):
    assert text.startswith("amdt1.")
    raw = unb64url(text[len("amdt1."):])
    assert raw[:4] == b"AMDT" and raw[4] == 1
    count, pos, links = raw[5], 6, []
    for _ in range(count):
        (blen,) = struct.unpack_from(">H", raw, pos)
        pos += 2
        body = raw[pos:pos + blen]
        pos += blen
        sig = raw[pos:pos + 64]
        pos += 64
        b = 0
        assert body[b] == 1
        issuer, audience = body[1:33], body[33:65]
        nbf, exp = struct.unpack_from(">QQ", body, 65)
        depth = body[81]
        prev = body[82:114]
        ncaps, b, caps = body[114], 115, []
        for _ in range(ncaps):
            (clen,) = struct.unpack_from(">H", body, b)
            caps.append(body[b + 2:b + 2 + clen].decode())
            b += 2 + clen
        assert b == len(body)
        h = hashlib.sha256(b"agentmesh/delegation-link-hash/v1\0" + body + sig).digest()
        links.append(dict(issuer=issuer, audience=audience, nbf=nbf, exp=exp, depth=depth,
                          prev=prev, caps=caps, sig=sig, body=body, hash=h))
    assert pos == len(raw)
    return links


def covers(g: str, r: str) -> bool:
    def segs(c):
        if c == "*":
            return [None, None, None]
        p = c.split(":")
        p += ["*"] * (3 - len(p))
        return [None if s == "*" else s for s in p]
    return all(a is None or (b is not None and a == b) for a, b in zip(segs(g), segs(r)))


def independent_verdict(links, at):
    """The spec's checks, in the spec's order; returns a reason code."""
    for l in links:
        if not verify(l["issuer"], "agentmesh/delegation-link/v1", l["body"], l["sig"]):
            return "bad_signature"
    for i, l in enumerate(links[1:], 1):
        p = links[i - 1]
        if l["issuer"] != p["audience"] or l["prev"] != p["hash"]:
            return "broken_chain"
        if not all(any(covers(g, r) for g in p["caps"]) for r in l["caps"]):
            return "widened"
        if p["depth"] == 0:
            return "depth_exhausted"
    for l in links:
        if at + 30 < l["nbf"]:
            return "not_yet_valid"
        if at >= l["exp"]:
            return "expired"
    return "valid"


def check_delegation():
    v = json.loads((ROOT / "docs/wire/vectors/delegation.json").read_text())
    for vec in v["vectors"]:
        links = parse_token(vec["token"])
        if "link_hashes" in vec:
            ok([l["hash"].hex() for l in links] == vec["link_hashes"], f"{vec['name']}: link hashes")
            ok([l["body"].hex() for l in links] == vec["link_bodies"], f"{vec['name']}: link bodies")
        verdict = independent_verdict(links, vec["verify_at"])
        ok(verdict == vec["expect"], f"{vec['name']}: expected {vec['expect']}, independent check says {verdict}")
        if verdict == "valid":
            ok(sorted(links[-1]["caps"]) == vec["capabilities"], f"{vec['name']}: capabilities")
    for p in v["holder_proofs"]:
        links = parse_token(p["token"])
        raw = unb64url(p["proof"][len("amhp1."):])
        ts, sig = struct.unpack(">Q", raw[:8])[0], raw[8:]
        ok(ts == p["timestamp"], "holder proof timestamp")
        msg = links[-1]["hash"] + bytes.fromhex(p["request_digest"]) + struct.pack(">Q", ts)
        ok(verify(links[-1]["audience"], "agentmesh/holder-proof/v1", msg, sig), "holder proof signature")


check_identity()
check_delegation()
print(f"wire vectors: {checks} independent checks passed")
