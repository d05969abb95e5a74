"""A round trip against a running `agentmesh serve` through the Python client
that openapi-python-client generated from docs/openapi.json.

Only the generated package is used to talk to the server: its typed
endpoint functions and models (no raw HTTP). Every answer is checked for its
status and that it parsed into the documented model, and typed fields are
compared with what was sent.

    python exercise.py <package> <base-url> <admin-token>

Run by interop/openapi-client/run.sh, which generates the package into a
temporary folder and puts it on PYTHONPATH.
"""

import importlib
import io
import sys
import time

package, base_url, token = sys.argv[1:4]


def mod(name):
    return importlib.import_module(f"{package}.{name}")


client_mod = mod("client")
types = mod("types")
models = mod("models")
api = {
    name: mod(f"api.default.{name}")
    for name in (
        "get_authority",
        "post_sponsors",
        "get_sponsors",
        "post_agents",
        "get_agents",
        "get_agents_id",
        "post_agents_id_suspend",
        "get_trust",
        "get_trust_agent",
        "get_audit",
        "put_policy",
        "get_policy",
    )
}

checks = 0


def check(cond, what):
    global checks
    if not cond:
        print(f"FAIL: {what}")
        sys.exit(1)
    checks += 1


def call(name, expect_status, expect_type, **kwargs):
    """Call a generated endpoint; the answer must have the status and parse
    into the model the document names for it."""
    resp = api[name].sync_detailed(**kwargs)
    body = resp.content[:300].decode("utf-8", "replace")
    check(
        int(resp.status_code) == expect_status,
        f"{name}: status {int(resp.status_code)}, expected {expect_status}: {body}",
    )
    check(
        isinstance(resp.parsed, expect_type),
        f"{name}: parsed as {type(resp.parsed).__name__}, expected {expect_type.__name__}",
    )
    return resp.parsed


# raise_on_unexpected_status: a status the document does not list is an error.
public = client_mod.Client(base_url=base_url, raise_on_unexpected_status=True)
admin = client_mod.AuthenticatedClient(
    base_url=base_url, token=token, raise_on_unexpected_status=True
)
wrong = client_mod.AuthenticatedClient(
    base_url=base_url, token="not-the-admin-token", raise_on_unexpected_status=True
)
suffix = str(int(time.time() * 1000))
sponsor_email = f"owner-{suffix}@example.com"
agent_name = f"gen-client-{suffix}"
# The Ed25519 base point: a valid public key nobody needs the private half of
# (agents registered by the admin hold their key elsewhere).
# Registered as a did:key; the mesh names it did:mesh with the same key.
agent_key = "z6MkkQLV92bJ9Frad3fq3yWJzQqc6dpbE4rJWVaRjKCC2wRf"
agent_did = f"did:mesh:{agent_key}"

# 1. The authority (public).
authority = call("get_authority", 200, models.GetAuthorityResponse200, client=public)
check(authority.mesh.startswith("did:"), f"authority.mesh is a DID: {authority.mesh!r}")
check(authority.credential_ttl_secs > 0, "authority.credential_ttl_secs > 0")
check(bool(authority.audit_vkey), "authority.audit_vkey is set")

# 2. A sponsor.
sponsor = call(
    "post_sponsors",
    201,
    models.Sponsor,
    client=admin,
    body=models.PostSponsorsBody(email=sponsor_email, capabilities=["read:*", "write:*"]),
)
check(sponsor.email == sponsor_email, f"sponsor.email {sponsor.email!r}")
check(sponsor.active is True, "sponsor.active")
check(sorted(sponsor.capabilities) == ["read:*", "write:*"], f"sponsor.capabilities {sponsor.capabilities}")
sponsors = call("get_sponsors", 200, models.GetSponsorsResponse200, client=admin)
check(any(s.email == sponsor_email for s in sponsors.sponsors), "the sponsor is listed")

# 3. An agent with capabilities.
agent = call(
    "post_agents",
    201,
    models.Agent,
    client=admin,
    body=models.PostAgentsBody(
        name=agent_name,
        sponsor=sponsor_email,
        capabilities=["read:files", "write:tickets"],
        did=f"did:key:{agent_key}",
    ),
)
check(agent.name == agent_name, f"agent.name {agent.name!r}")
check(agent.did == agent_did, f"agent.did {agent.did!r}")
check(agent.sponsor == sponsor_email, f"agent.sponsor {agent.sponsor!r}")
check(agent.sponsor_did == sponsor.did, "agent.sponsor_did is the sponsor's DID")
check(sorted(agent.capabilities) == ["read:files", "write:tickets"], f"agent.capabilities {agent.capabilities}")
check(agent.status == models.AgentStatus.ACTIVE, f"agent.status {agent.status!r}")
check(agent.key_custody == models.AgentKeyCustody.EXTERNAL, f"agent.key_custody {agent.key_custody!r}")
check(agent.parent_did is None and agent.expires_at is None, "no parent, no expiry")
# The sponsor's signed attestation, as its own model.
sp = agent.sponsorship
check(isinstance(sp, models.Sponsorship), "agent.sponsorship is a Sponsorship")
check(sp.agent_did == agent_did and sp.agent_name == agent_name, "the attestation names the agent")
check(sp.sponsor == sponsor_email and sp.sponsor_did == sponsor.did, "and its sponsor")
check(sp.spiffe_id == agent.spiffe_id and sorted(sp.capabilities) == sorted(agent.capabilities), "and its SPIFFE ID and capabilities")
check(len(sp.signature) > 40 and isinstance(sp.issued_at, int), "and is signed")

# 4. Listed (paged) and fetched.
page = call("get_agents", 200, models.GetAgentsResponse200, client=admin, limit=100)
check(any(a.name == agent_name and a.did == agent_did for a in page.agents), "the agent is listed")
got = call("get_agents_id", 200, models.GetAgentsIdResponse200, client=admin, id=agent_name)
check(got.agent.name == agent_name and got.agent.did == agent_did, "GET /v1/agents/{id} is the agent")
check(got.trust is None or isinstance(got.trust, models.TrustScore), "trust is a TrustScore or null")

# 5. Suspended.
suspended = call(
    "post_agents_id_suspend",
    200,
    models.Agent,
    client=admin,
    id=agent_name,
    body=models.PostAgentsIdSuspendBody(reason="generated-client test"),
)
check(suspended.status == models.AgentStatus.SUSPENDED, f"suspended.status {suspended.status!r}")
check(suspended.status_reason == "generated-client test", f"suspended.status_reason {suspended.status_reason!r}")
again = call("get_agents_id", 200, models.GetAgentsIdResponse200, client=admin, id=agent_did)
check(again.agent.status == models.AgentStatus.SUSPENDED, "the suspension is stored (fetched by DID)")

# 6. Trust: the list with its prior, and the agent's own.
trust = call("get_trust", 200, models.GetTrustResponse200, client=admin)
check(isinstance(trust.prior, models.TrustScore), "trust.prior is a TrustScore")
check(0.0 <= trust.prior.score <= 1.0 and bool(trust.prior.tier), f"trust.prior {trust.prior.score} {trust.prior.tier!r}")
check(
    {d.dimension for d in trust.prior.dimensions} == set(models.DimensionScoreDimension),
    f"the prior has one DimensionScore per dimension: {[d.dimension for d in trust.prior.dimensions]}",
)
one = call("get_trust_agent", 200, models.GetTrustAgentResponse200, client=admin, agent=agent_name)
check(one.name == agent_name and one.agent == agent_did, f"trust of {one.name!r} ({one.agent!r})")
check(one.score is None or isinstance(one.score, models.TrustScore), "score is a TrustScore or null")

# 7. The audit log has the sponsor and the agent.
audit = call("get_audit", 200, models.GetAuditResponse200, client=admin, limit=50)
check(audit.size >= 2 and len(audit.entries) >= 2, f"audit: size {audit.size}, {len(audit.entries)} entries")
check(all(len(e.leaf_hash) == 64 for e in audit.entries), "every entry has a SHA-256 leaf hash")
indexes = [e.index for e in audit.entries]
check(indexes == sorted(indexes), "entries in index order")
texts = [str(e.entry.to_dict()) for e in audit.entries]
check(any(agent_did in t for t in texts), "an audit entry names the agent's DID")
check(any(sponsor_email in t for t in texts), "an audit entry names the sponsor")

# 8. A policy (YAML body). openapi-python-client 0.29 has no body type for
# text media types; run.sh maps application/yaml to its octet-stream one
# (the request still says Content-Type: application/yaml), which sends
# `body.payload`, i.e. its File type (the signature says `str` because the
# document's schema is a plain string, not `format: binary`).
policy_yaml = f"""version: "1.0"
name: generated-client
agent: "{agent_name}"
default_action: deny
rules:
  - name: reads
    condition: action.capability == 'read:files'
    action: allow
"""
published = call(
    "put_policy",
    200,
    models.PutPolicyResponse200,
    client=admin,
    body=types.File(payload=io.BytesIO(policy_yaml.encode()), mime_type="application/yaml"),
)
check(len(published.sha256) == 64, f"published.sha256 {published.sha256!r}")
check(
    bool(published.version) and all(c in "0123456789abcdef" for c in published.version),
    f"published.version (the policy set's digest) {published.version!r}",
)
policy = call("get_policy", 200, models.GetPolicyResponse200, client=admin)
check(policy.yaml == policy_yaml, "GET /v1/policy returns the YAML as published")
check(policy.sha256 == published.sha256, "and its digest")

# 9. Refusals use the documented Error model. (`public` has no token: the
# plain Client where the signature asks for AuthenticatedClient.)
for label, c in (("no credentials", public), ("a wrong token", wrong)):
    err = call("get_agents", 401, models.Error, client=c)
    check(isinstance(err.error, models.ErrorError), f"{label}: error.error is ErrorError")
    check(bool(err.error.code) and bool(err.error.message), f"{label}: code {err.error.code!r}, message {err.error.message!r}")
missing = call("get_agents_id", 404, models.Error, client=admin, id="no-such-agent")
check(bool(missing.error.code), f"unknown agent: code {missing.error.code!r}")

print(
    f"ok: {checks} checks through the generated client "
    f"(authority, sponsor, agent {agent_name}, list, get, suspend, trust, "
    f"audit {audit.size} entries, policy {published.sha256[:12]}…, 401 and 404 as Error)"
)
