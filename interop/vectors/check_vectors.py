#!/usr/bin/env python3
"""Independent check of AgentMesh's published wire vectors.

Written from docs/wire/identity.md and docs/wire/delegation.md alone, with
PyPI's `cryptography` for Ed25519 and hashlib for SHA-256, so the Rust code
and the spec are checked against a second implementation. Exits non-zero on
the first disagreement. The IATP section is written from docs/wire/iatp.md,
with its own RFC 8785 canonical JSON (no json.dumps).
"""
import base64
import hashlib
import json
import re
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


# --- IATP, AgentMesh profile (docs/wire/iatp.md) ---------------------------

IATP_PROFILE = "agentmesh-iatp/1"
JCS_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jcs_string(s: str) -> str:
    out = []
    for ch in s:
        if ch in JCS_ESCAPES:
            out.append(JCS_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def jcs(v) -> str:
    """RFC 8785 for the values the profile signs or binds (no doubles)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code units
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in keys) + "}"
    raise TypeError(f"no canonical form here for {type(v).__name__}")


def unb64url_strict(s: str) -> bytes:
    """base64url, no padding, canonical trailing bits."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise ValueError("not base64url")
    raw = unb64url(s)
    if b64url(raw) != s:
        raise ValueError("non-canonical base64url")
    return raw


def did_key_or_none(did):
    if not isinstance(did, str) or not re.fullmatch(r"did:(mesh|key):z[1-9A-HJ-NP-Za-km-z]+", did):
        return None
    try:
        return base58_did_key(did)
    except (AssertionError, OverflowError, ValueError):
        return None


def iatp_status(code: str) -> int:
    if code in ("malformed", "unsupported_profile", "channel_unsupported"):
        return 400
    if code == "busy":
        return 503
    if code in ("agent_inactive", "trust_below_threshold"):
        return 403
    return 401


def iatp_challenge_verdict(c, now):
    if c["profile"] != IATP_PROFILE:
        return "unsupported_profile"
    try:
        if len(unb64url_strict(c["id"])) != 16 or len(unb64url_strict(c["nonce"])) != 32:
            return "malformed"
        sig = unb64url_strict(c["signature"])
    except ValueError:
        return "malformed"
    key = did_key_or_none(c["verifier"])
    if key is None or ("prover" in c and did_key_or_none(c["prover"]) is None):
        return "malformed"
    signed = {k: v for k, v in c.items() if k != "signature"}
    if not verify(key, "agentmesh/iatp/challenge/v1", jcs(signed).encode(), sig):
        return "bad_signature"
    if now >= c["expires_at"]:
        return "challenge_expired"
    if c["issued_at"] > now + 30:
        return "not_yet_valid"
    return "valid"


def iatp_transcript(r) -> str:
    fields = ("challenge", "verifier", "verifier_nonce", "prover", "prover_nonce", "expires_at", "channel")
    return jcs(dict({k: r[k] for k in fields}, profile=IATP_PROFILE))


def iatp_request_channel(governed) -> str:
    return "request:" + b64url(hashlib.sha256(jcs(governed).encode()).digest())


def iatp_response_verdict(c, r, answered, now, channel, registry, min_trust):
    """The verifier's checks in the spec's order; returns a reason code."""
    if r["profile"] != IATP_PROFILE:
        return "unsupported_profile"
    if r["challenge"] != c["id"]:
        return "unknown_challenge"
    if answered:
        return "replayed"
    if r["verifier"] != c["verifier"] or r["verifier_nonce"] != c["nonce"] or r["expires_at"] != c["expires_at"]:
        return "transcript_mismatch"
    if now >= c["expires_at"]:
        return "challenge_expired"
    if c.get("prover") is not None and c["prover"] != r["prover"]:
        return "wrong_peer"
    try:
        if len(unb64url_strict(r["prover_nonce"])) != 32 or len(unb64url_strict(r["verifier_nonce"])) != 32:
            return "malformed"
        sig = unb64url_strict(r["signature"])
    except ValueError:
        return "malformed"
    if len(r["channel"].encode()) > 512:
        return "malformed"
    key = did_key_or_none(r["prover"])
    if key is None:
        return "malformed"
    if not verify(key, "agentmesh/iatp/response/v1", iatp_transcript(r).encode(), sig):
        return "bad_signature"
    if r["channel"].startswith("tls-exporter:"):
        return "channel_unsupported"
    if "origins" in channel:
        wanted = ["origin:" + o.rstrip("/") for o in channel["origins"]]
    else:
        wanted = [iatp_request_channel(channel["governed"])]
    if r["channel"] not in wanted:
        return "channel_mismatch"
    facts = next((f for d, f in registry.items() if base58_did_key(d) == key), None)
    if facts is None:
        return "unknown_agent"
    if facts["inactive"] is not None:
        return "agent_inactive"
    if facts["trust"] < min_trust:
        return "trust_below_threshold"
    return "valid"


ATTESTATION_CLAIMS = {"v", "id", "iss", "sub", "name", "aud", "trust_milli", "tier", "capabilities", "iat", "exp", "transcript"}


def iatp_attestation_decode(text):
    """Returns (code, claims): the format and signature checks only."""
    if len(text) > 8192 or not text.startswith("amat1.") or "." not in text[len("amat1."):]:
        return "malformed", None
    p64, s64 = text[len("amat1."):].split(".", 1)
    try:
        payload = unb64url_strict(p64)
        claims = json.loads(payload)
    except ValueError:
        return "malformed", None
    if not isinstance(claims, dict) or set(claims) != ATTESTATION_CLAIMS or claims["v"] != 1:
        return "malformed", None
    if jcs(claims).encode() != payload:
        return "malformed", None
    iss = did_key_or_none(claims["iss"])
    if iss is None or did_key_or_none(claims["sub"]) is None:
        return "malformed", None
    try:
        sig = unb64url_strict(s64)
    except ValueError:
        return "malformed", None
    if not verify(iss, "agentmesh/iatp/attestation/v1", payload, sig):
        return "bad_signature", claims
    return "valid", claims


def iatp_attestation_check(claims, audience, now):
    if now >= claims["exp"]:
        return "attestation_expired"
    if claims["iat"] > now + 30:
        return "not_yet_valid"
    if claims["aud"] not in ("*", audience):
        return "wrong_audience"
    return "valid"


TRUST_LEVELS = ("verified_partner", "trusted", "standard", "unknown", "untrusted")
MANIFEST_KNOWN = {"$schema", "identity", "agent_id", "agent_version", "trust_level", "scopes", "capabilities",
                  "reversibility", "privacy", "privacy_contract", "protocol_version"}


def manifest_facts(m):
    """The lenient reading of both manifest shapes, from the spec's table."""
    def text(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, str):
            return v if 0 < len(v.encode()) <= 1024 else None
        if isinstance(v, (int, float)):
            return str(v)
        return None

    def flag(v):
        if isinstance(v, bool):
            return v
        return isinstance(v, str) and ascii_lower(v) in ("true", "yes", "1")

    def ascii_lower(s):
        return "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in s)

    def one_of(v, allowed, otherwise):
        return ascii_lower(v) if v is not None and ascii_lower(v) in allowed else otherwise

    def first(*vs):
        return next((v for v in vs if v is not None), None)

    identity = m.get("identity") if isinstance(m.get("identity"), dict) else None
    caps = m.get("capabilities") if isinstance(m.get("capabilities"), dict) else None
    rev = m.get("reversibility")
    rev_text = None
    if rev is not None:
        rev_text = first(text(rev.get("level")) if isinstance(rev, dict) else None, text(rev))
    if rev_text is None and caps is not None:
        rev_text = text(caps.get("reversibility"))
    privacy = m["privacy"] if "privacy" in m else m.get("privacy_contract")
    privacy = privacy if isinstance(privacy, dict) else None
    retention = None
    if privacy is not None:
        retention = first(text(privacy.get("retention_policy")), text(privacy.get("retention")))
    scopes = m.get("scopes") if isinstance(m.get("scopes"), list) else []
    return {
        "shape": "spec" if identity is not None else "sidecar-0.5",
        "agent_id": first(text(identity.get("agent_id")) if identity else None, text(m.get("agent_id"))),
        "version": text(m.get("agent_version")),
        "owner": text(identity.get("owner")) if identity else None,
        "verification_key": text(identity.get("verification_key")) if identity else None,
        "trust_level": one_of(text(m.get("trust_level")), TRUST_LEVELS, "unknown"),
        "scopes": [text(s) for s in scopes if text(s) is not None][:256],
        "reversibility": one_of(rev_text, ("full", "partial", "none"), "none"),
        "retention": one_of(retention, ("ephemeral", "temporary", "permanent", "forever"), "unknown"),
        "human_in_loop": privacy is not None and (flag(privacy.get("human_in_loop")) or flag(privacy.get("human_review"))),
        "training_consent": privacy is not None and flag(privacy.get("training_consent")),
        "protocol_version": text(m.get("protocol_version")),
        "unknown_fields": sorted(k for k in m if k not in MANIFEST_KNOWN)[:64],
    }


def manifest_score(f):
    s = {"verified_partner": 10, "trusted": 7, "standard": 5, "unknown": 2}.get(f["trust_level"], 0)
    s += 2 if f["reversibility"] != "none" else 0
    s += {"ephemeral": 1, "permanent": -1, "forever": -1}.get(f["retention"], 0)
    s -= 2 if f["human_in_loop"] else 0
    s -= 1 if f["training_consent"] else 0
    return max(0, min(10, s))


def check_iatp():
    v = json.loads((ROOT / "docs/wire/vectors/iatp.json").read_text())
    ok(v["profile"] == IATP_PROFILE, "iatp: profile")
    ok(v["domains"] == {"challenge": "agentmesh/iatp/challenge/v1", "response": "agentmesh/iatp/response/v1",
                        "attestation": "agentmesh/iatp/attestation/v1"}, "iatp: domain strings")
    for name, k in v["keys"].items():
        pk = pub_from_seed(k["seed"])
        ok(pk.hex() == k["public_key"] and did_of(pk) == k["did"], f"iatp: {name} key and DID from seed")
    keys = {name: k["did"] for name, k in v["keys"].items()}
    cfg = v["verifier"]
    registry, min_trust = cfg["registry"], cfg["min_trust"]

    # The challenge.
    ch = v["challenge"]
    c = ch["message"]
    ok(c["verifier"] == keys["verifier"] and c["prover"] == keys["prover"], "iatp: challenge names both peers")
    ok(c["expires_at"] - c["issued_at"] == cfg["challenge_ttl_secs"], "iatp: challenge lifetime")
    ok(jcs({k: x for k, x in c.items() if k != "signature"}) == ch["signed_json"], "iatp: challenge signed bytes are the canonical JSON of every other field")
    for chk in ch["checks"]:
        got = iatp_challenge_verdict(c, chk["now"])
        ok(got == chk["expect"], f"iatp: challenge at {chk['now']}: expected {chk['expect']}, independent check says {got}")
    t = ch["tampered"]
    got = iatp_challenge_verdict(t["message"], t["now"])
    ok(got == t["expect"], f"iatp: tampered challenge: expected {t['expect']}, independent check says {got}")

    # The origin-bound response.
    rs = v["response"]
    r = rs["message"]
    ok(r["channel"] == "origin:" + rs["origin"] and rs["origin"] in cfg["origins"], "iatp: origin channel")
    ok(iatp_transcript(r) == rs["transcript"], "iatp: transcript is the canonical JSON of the eight fields")
    ok(b64url(hashlib.sha256(rs["transcript"].encode()).digest()) == rs["transcript_sha256"], "iatp: transcript hash")
    got = iatp_response_verdict(c, r, False, rs["now"], {"origins": cfg["origins"]}, registry, min_trust)
    ok(got == rs["expect"], f"iatp: origin-bound response: independent check says {got}")

    # The request-bound response.
    rb = v["request_bound"]
    canonical = jcs(rb["governed"])
    ok(canonical == rb["governed_canonical"], "iatp: canonical JSON of the governed parts")
    ok(canonical != json.dumps(rb["governed"], sort_keys=True, separators=(",", ":"), ensure_ascii=False),
       "iatp: the vector exercises UTF-16 key order (code-point order would differ)")
    ok(b64url(hashlib.sha256(canonical.encode()).digest()) == rb["governed_sha256"], "iatp: governed digest")
    ok(iatp_request_channel(rb["governed"]) == rb["channel"] == rb["response"]["channel"], "iatp: request channel")
    msg = rb["a2a_message"]
    ok(iatp_request_channel(msg["parts"]) == rb["channel"], "iatp: A2A binding is over the message's parts")
    ok(msg["metadata"]["dev.agentmesh/iatp"]["response"] == rb["response"], "iatp: response rides in message metadata")
    ok(iatp_transcript(rb["response"]) == rb["transcript"], "iatp: request-bound transcript")
    ok(b64url(hashlib.sha256(rb["transcript"].encode()).digest()) == rb["transcript_sha256"], "iatp: request-bound transcript hash")
    ok(iatp_challenge_verdict(rb["challenge"], rb["now"]) == "valid", "iatp: request-bound challenge")
    got = iatp_response_verdict(rb["challenge"], rb["response"], False, rb["now"], {"governed": rb["governed"]}, registry, min_trust)
    ok(got == rb["expect"], f"iatp: request-bound response: independent check says {got}")

    # Refusals.
    for ref in v["refusals"]:
        ok(iatp_transcript(ref["response"]) == ref["transcript"], f"iatp: {ref['name']}: transcript")
        got = iatp_response_verdict(ref["challenge"], ref["response"], ref["answered_before"], ref["now"],
                                    ref["channel"], registry, min_trust)
        ok(got == ref["expect"], f"iatp: {ref['name']}: expected {ref['expect']}, independent check says {got}")
        ok(iatp_status(got) == ref["status"], f"iatp: {ref['name']}: HTTP status")

    # The attestation the verifier issues for the origin-bound run.
    a = v["attestation"]
    code, claims = iatp_attestation_decode(a["text"])
    ok(code == "valid" and claims == a["claims"], "iatp: attestation decodes and verifies")
    ok(a["text"] == "amat1." + a["payload_b64url"] + "." + a["signature_b64url"], "iatp: attestation parts")
    ok(unb64url(a["payload_b64url"]) == jcs(a["claims"]).encode() == a["payload_json"].encode(), "iatp: attestation payload is the canonical JSON of the claims")
    facts = registry[keys["prover"]]
    ok(claims["iss"] == keys["verifier"] and claims["sub"] == r["prover"] and claims["id"] == c["id"], "iatp: attestation names the handshake")
    ok(claims["transcript"] == rs["transcript_sha256"], "iatp: attestation binds the transcript hash")
    ok((claims["name"], claims["tier"], claims["capabilities"]) == (facts["name"], facts["tier"], facts["capabilities"]),
       "iatp: attestation facts are the verifier's registry's")
    ok(claims["trust_milli"] == int(facts["trust"] * 1000 + 0.5), "iatp: trust_milli rounds half away from zero")
    ok(claims["aud"] == cfg["audience"] and claims["exp"] - claims["iat"] == cfg["attestation_ttl_secs"] and claims["iat"] == rs["now"],
       "iatp: attestation audience and lifetime")
    for chk in a["checks"]:
        got = iatp_attestation_check(claims, chk["audience"], chk["now"])
        ok(got == chk["expect"], f"iatp: attestation at {chk['now']}: expected {chk['expect']}, independent check says {got}")
    for ref in a["refusals"]:
        got, _ = iatp_attestation_decode(ref["text"])
        ok(got == ref["expect"], f"iatp: attestation {ref['name']}: expected {ref['expect']}, independent check says {got}")
    nc = next(x for x in a["refusals"] if x["name"] == "non-canonical-payload")
    p64, s64 = nc["text"][len("amat1."):].split(".")
    ok(verify(pub_from_seed(v["keys"]["verifier"]["seed"]), v["domains"]["attestation"], unb64url(p64), unb64url(s64)),
       "iatp: the non-canonical attestation's signature is valid (refused for its form alone)")

    # IATP manifests.
    for m in v["manifests"]:
        f = manifest_facts(m["manifest"])
        ok(f == m["facts"], f"iatp: manifest {m['name']}: facts")
        ok(manifest_score(f) == m["iatp_score"], f"iatp: manifest {m['name']}: IATP score")


check_identity()
check_credential()
check_registration()
check_delegation()
check_rfc6962()
check_audit()
check_iatp()
print(f"wire vectors: {checks} independent checks passed")
