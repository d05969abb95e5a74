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


def lh(d):
    return hashlib.sha256(b"\x00" + d).digest()


def nh(a, b):
    return hashlib.sha256(b"\x01" + a + b).digest()


def mth(leaves):
    """RFC 9162 Merkle tree hash of a list of leaf hashes."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return nh(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m, leaves, start):
    n = len(leaves)
    if m == n:
        return [] if start else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, leaves[:k], start) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def check_rfc6962():
    v = json.loads((ROOT / "docs/wire/vectors/rfc6962.json").read_text())
    leaves = [lh(bytes.fromhex(x)) for x in v["leaves_hex"]]
    ok(mth([]).hex() == v["empty_root"], "empty root")
    for i, root in enumerate(v["roots"]):
        ok(mth(leaves[: i + 1]).hex() == root, f"RFC 6962 root of {i + 1}")
    for c in v["inclusion"]:
        got = [h.hex() for h in path(c["index"], leaves[: c["size"]])]
        ok(got == c["path"], f"RFC 6962 PATH({c['index']}, {c['size']})")
    for c in v["consistency"]:
        got = [] if c["old"] == c["new"] else [h.hex() for h in subproof(c["old"], leaves[: c["new"]], True)]
        ok(got == c["proof"], f"RFC 6962 PROOF({c['old']}, {c['new']})")


def check_audit():
    v = json.loads((ROOT / "docs/wire/vectors/audit.json").read_text())
    leaves = []
    for e in v["entries"]:
        obj = json.loads(e["canonical"])
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        ok(canonical == e["canonical"], "audit entry is sorted-key compact JSON")
        ok(set(obj) == {"action", "agent", "arguments_sha256", "decision", "detail", "event", "policy_version",
                        "rule", "seq", "sponsor", "time", "trace_id", "trust_after", "trust_before", "v"},
           "audit entry has every field")
        leaf = lh(e["canonical"].encode())
        ok(leaf.hex() == e["leaf_hash"], "audit leaf hash")
        leaves.append(leaf)
    ok(mth(leaves).hex() == v["root"], "audit root")
    ok(mth(leaves[:3]).hex() == v["root_at_3"], "audit root at 3")
    inc = v["inclusion"]
    ok([h.hex() for h in path(inc["index"], leaves[: inc["size"]])] == inc["path"], "audit inclusion proof")
    con = v["consistency"]
    ok([h.hex() for h in subproof(con["old"], leaves[: con["new"]], True)] == con["proof"], "audit consistency proof")
    # The checkpoint: C2SP signed note, Ed25519 over the note text.
    note = v["checkpoint"]
    text, sigs = note.split("\n\n", 1)
    text += "\n"
    origin, size, root_b64 = text.rstrip("\n").split("\n")
    ok(int(size) == len(leaves) and base64.b64decode(root_b64).hex() == v["root"], "checkpoint body")
    name, key_id_hex, key_b64 = v["verifier_key"].split("+", 2)
    raw = base64.b64decode(key_b64)
    ok(raw[0] == 1 and len(raw) == 33, "verifier key type")
    pk = raw[1:]
    ok(pub_from_seed(v["signer_seed"]) == pk, "verifier key from seed")
    ok(hashlib.sha256(name.encode() + b"\n\x01" + pk).digest()[:4].hex() == key_id_hex, "note key ID")
    line = sigs.strip("\n")
    ok(line.startswith("\u2014 " + name + " "), "signature line")
    blob = base64.b64decode(line.split(" ")[2])
    ok(blob[:4].hex() == key_id_hex, "signature key ID")
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(blob[4:], text.encode())
        ok(True, "checkpoint signature")
    except InvalidSignature:
        ok(False, "checkpoint signature")


def check_credential():
    v = json.loads((ROOT / "docs/wire/vectors/credential.json").read_text())
    pk = pub_from_seed(v["mesh_seed"])
    ok(pk.hex() == v["mesh_public_key"], "credential: mesh key from seed")
    text = v["credential"]
    ok(text.startswith("amcr1."), "credential prefix")
    payload_b64, sig_b64 = text[len("amcr1."):].split(".")
    ok(payload_b64 == v["payload_b64url"] and sig_b64 == v["signature_b64url"], "credential parts")
    payload = unb64url(payload_b64)
    canonical = json.dumps(v["claims"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    ok(payload == canonical.encode(), "credential payload is the canonical JSON of the claims")
    ok(verify(pk, v["domain"], payload, unb64url(sig_b64)), "credential signature")
    claims = json.loads(payload)
    for c in v["checks"]:
        valid = claims["aud"] in ("*", c["audience"]) and c["now"] < claims["exp"] and claims["iat"] <= c["now"] + 30
        ok(valid == c["valid"], f"credential check at {c['now']} for {c['audience']}")
    t = v["tampered"][len("amcr1."):].split(".")
    try:
        bad = verify(pk, v["domain"], unb64url(t[0]), unb64url(t[1]))
    except Exception:
        bad = False
    ok(not bad, "tampered credential rejected")


def check_registration():
    v = json.loads((ROOT / "docs/wire/vectors/registration.json").read_text())
    agent_pk = pub_from_seed(v["agent_seed"])
    sponsor_pk = pub_from_seed(v["sponsor_seed"])
    mesh = v["mesh"]

    def canonical(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    r = v["registration"]["request"]
    fields = {k: r.get(k) for k in ("name", "sponsor", "capabilities", "did", "parent", "expires_at", "nonce", "timestamp")}
    fields["mesh"] = mesh
    msg = canonical(fields)
    ok(msg == v["registration"]["message"], "registration: message is the canonical JSON of the fields + mesh")
    ok(r["did"].startswith("did:key:z") and base58_did_key(r["did"]) == agent_pk, "registration: did:key names the agent's key")
    ok(verify(agent_pk, v["registration"]["domain"], msg.encode(), unb64url(r["signature"])), "registration signature")
    altered = dict(fields, capabilities=fields["capabilities"] + ["admin:*"])
    ok(not verify(agent_pk, v["registration"]["domain"], canonical(altered).encode(), unb64url(r["signature"])), "altered registration rejected")
    other_mesh = dict(fields, mesh="did:mesh:z6MkOther")
    ok(not verify(agent_pk, v["registration"]["domain"], canonical(other_mesh).encode(), unb64url(r["signature"])), "registration for another mesh rejected")

    c = v["credential_request"]["request"]
    cf = {k: c.get(k) for k in ("did", "audience", "ttl_secs", "nonce", "timestamp")}
    cf["mesh"] = mesh
    cmsg = canonical(cf)
    ok(cmsg == v["credential_request"]["message"], "credential request: canonical message")
    ok(c["did"] == did_of(agent_pk), "credential request: did:mesh names the agent's key")
    ok(verify(agent_pk, v["credential_request"]["domain"], cmsg.encode(), unb64url(c["signature"])), "credential request signature")

    a = v["approval"]
    amsg = canonical(a["fields"])
    ok(amsg == a["message"], "approval: canonical message")
    ok(verify(sponsor_pk, a["domain"], amsg.encode(), unb64url(a["signature"])), "approval signature by the sponsor")
    ok(not verify(agent_pk, a["domain"], amsg.encode(), unb64url(a["signature"])), "approval is not the agent's signature")


check_identity()
check_credential()
check_registration()
check_delegation()
check_rfc6962()
check_audit()
print(f"wire vectors: {checks} independent checks passed")
