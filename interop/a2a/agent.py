#!/usr/bin/env python3
"""A small A2A peer agent built on a2a-sdk 1.3.0, for testing the AgentMesh gateway.

    python agent.py --port P [--name NAME] [--sign-jwk FILE] [--public-url URL] [--no-compat] [--verbose]
    python agent.py --gen-jwk FILE [--kty OKP|EC]      # write a test key pair and exit

Serves, on 127.0.0.1:P only:
  GET  /.well-known/agent-card.json   the card (signed with --sign-jwk)
  POST /                              JSON-RPC, A2A 1.0 (+ 0.3 slash methods unless --no-compat)
  POST /rest/...                      HTTP+JSON, A2A 1.0 (+ 0.3 /rest/v1/... unless --no-compat)

Behaviour, keyed on the first part of the user message:
  data part {...}      -> direct Message with a data part {"received": {...}}
  text "task: X"       -> Task: working, artifact "done: X", completed (~50 ms apart)
  text "slow: X"       -> Task: working, a status update every 0.5 s for ~2 s, then
                          artifact "done: X" and completed (for SubscribeToTask/cancel tests)
  any other text T     -> direct Message "echo: T" (metadata.requestedExtensions lists
                          the A2A-Extensions the request carried, if any;
                          metadata.receivedMetadataKeys the message's metadata keys)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid

from pathlib import Path

import uvicorn

from google.protobuf.json_format import MessageToDict
from jwt.api_jwk import PyJWK
from starlette.applications import Starlette

from a2a.helpers import new_data_part, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import (
    create_agent_card_routes,
    create_jsonrpc_routes,
    create_rest_routes,
)
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Message,
    Role,
    Task,
    TaskState,
    TaskStatus,
)
from a2a.utils.signing import create_agent_card_signer


STEP_DELAY = 0.05  # between events of a "task:" run, so a stream shows them separately
SLOW_TICK = 0.5  # interval of the "slow:" status updates
SLOW_TICKS = 4  # 4 x 0.5 s = ~2 s in TASK_STATE_WORKING


class TestExecutor(AgentExecutor):
    """Deterministic executor; see the module docstring for the behaviour."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        first = message.parts[0] if message and message.parts else None

        if first is not None and first.HasField('data'):
            # Part.data is a google.protobuf.Value; MessageToDict turns it back
            # into plain JSON (whole numbers come back as floats: Value is a double).
            received = MessageToDict(first.data)
            reply = Message(
                role=Role.ROLE_AGENT,
                message_id=str(uuid.uuid4()),
                context_id=context.context_id,
                parts=[new_data_part({'received': received})],
            )
            await event_queue.enqueue_event(reply)
            return

        text = first.text if first is not None and first.HasField('text') else ''
        if text.startswith('task:'):
            await self._run_task(context, event_queue, text[len('task:'):].strip(), ticks=0)
        elif text.startswith('slow:'):
            await self._run_task(context, event_queue, text[len('slow:'):].strip(), ticks=SLOW_TICKS)
        else:
            reply = new_text_message(f'echo: {text}', context_id=context.context_id)
            if context.requested_extensions:
                # Lets a test see which A2A-Extensions (or 0.3 X-A2A-Extensions)
                # reached the agent through a gateway.
                reply.metadata.update({'requestedExtensions': sorted(context.requested_extensions)})
            received = context.message.metadata if context.message is not None else None
            if received is not None and len(received) > 0:
                # Lets a test see which metadata keys reached the agent (a
                # gateway must strip the credentials it consumed).
                reply.metadata.update({'receivedMetadataKeys': sorted(received.keys())})
            await event_queue.enqueue_event(reply)

    async def _run_task(
        self, context: RequestContext, event_queue: EventQueue, rest: str, ticks: int
    ) -> None:
        # In task mode the first event must be the Task itself; the handler
        # refuses status/artifact updates for a task it has not seen yet.
        await event_queue.enqueue_event(
            Task(
                id=context.task_id,
                context_id=context.context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                history=[context.message],
            )
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await asyncio.sleep(STEP_DELAY)
        await updater.start_work()
        for i in range(ticks):
            await asyncio.sleep(SLOW_TICK)
            await updater.update_status(
                TaskState.TASK_STATE_WORKING,
                message=updater.new_agent_message([new_text_part(f'tick {i + 1}/{ticks}')]),
            )
        await asyncio.sleep(STEP_DELAY)
        await updater.add_artifact([new_text_part(f'done: {rest}')], name='result')
        await asyncio.sleep(STEP_DELAY)
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        # The framework cancels the running execute() right after this returns.
        # Publishing CANCELED here lets live subscribers see the transition (the
        # SDK would otherwise only write CANCELED to the store afterwards).
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def build_card(name: str, base_url: str, compat: bool) -> AgentCard:
    base_url = base_url.rstrip('/')
    interfaces = [
        AgentInterface(url=f'{base_url}/', protocol_binding='JSONRPC', protocol_version='1.0'),
        AgentInterface(url=f'{base_url}/rest', protocol_binding='HTTP+JSON', protocol_version='1.0'),
    ]
    if compat:
        # Advertising the 0.3 interfaces too makes the SDK add the legacy
        # top-level fields (url, preferredTransport, protocolVersion,
        # additionalInterfaces) to the served card, so 0.3 clients can read it.
        # SDK 1.x clients still pick the 1.0 entries (they prefer 1.0).
        interfaces += [
            AgentInterface(url=f'{base_url}/', protocol_binding='JSONRPC', protocol_version='0.3'),
            AgentInterface(url=f'{base_url}/rest', protocol_binding='HTTP+JSON', protocol_version='0.3'),
        ]
    return AgentCard(
        name=name,
        description='AgentMesh interop test peer (a2a-sdk 1.3.0)',
        version='1.0.0',
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=['text/plain', 'application/json'],
        default_output_modes=['text/plain', 'application/json'],
        skills=[
            AgentSkill(
                id='echo',
                name='Echo',
                description='Replies "echo: <text>"; a data part comes back as {"received": ...}.',
                tags=['test', 'echo'],
                examples=['hello'],
            ),
            AgentSkill(
                id='report',
                name='Report',
                description='"task: X" runs a short task producing artifact "done: X"; '
                '"slow: X" does the same over ~2 s.',
                tags=['test', 'task'],
                examples=['task: build the report'],
            ),
        ],
    )


# JWK (kty, crv) -> JWS alg used for signing.
_JWK_ALGS = {('OKP', 'Ed25519'): 'EdDSA', ('EC', 'P-256'): 'ES256'}


def sign_card(card: AgentCard, jwk_path: str) -> AgentCard:
    jwk = json.loads(Path(jwk_path).read_text())
    alg = jwk.get('alg') or _JWK_ALGS.get((jwk.get('kty'), jwk.get('crv')))
    if alg is None:
        sys.exit(f'--sign-jwk: unsupported key {jwk.get("kty")}/{jwk.get("crv")}; use OKP Ed25519 or EC P-256')
    # Only set header fields we have: PyJWT would write a None value as null.
    header = {'alg': alg, 'typ': 'JOSE', 'kid': jwk.get('kid') or 'agentmesh-test-key'}
    signer = create_agent_card_signer(signing_key=PyJWK(jwk, algorithm=alg), protected_header=header)
    return signer(card)


def gen_jwk(path: str, kty: str) -> None:
    """Write a private JWK to PATH and its public half to PATH with .pub.json."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm

    if kty == 'OKP':
        key = ed25519.Ed25519PrivateKey.generate()
        priv = OKPAlgorithm.to_jwk(key, as_dict=True)
        pub = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        priv = ECAlgorithm.to_jwk(key, as_dict=True)
        pub = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    kid = f'test-{kty.lower()}-1'
    priv['kid'] = pub['kid'] = kid
    out = Path(path)
    out.write_text(json.dumps(priv) + '\n')
    out.with_suffix('.pub.json').write_text(json.dumps(pub) + '\n')


def build_app(card: AgentCard, compat: bool) -> Starlette:
    handler = DefaultRequestHandler(
        agent_executor=TestExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, rpc_url='/', enable_v0_3_compat=compat),
        # The REST builder has its own 0.3 switch: it mounts /rest/v1/... next to /rest/...
        *create_rest_routes(handler, enable_v0_3_compat=compat, path_prefix='/rest'),
    ]
    return Starlette(routes=routes)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--port', type=int, help='port on 127.0.0.1')
    p.add_argument('--name', default='mesh-test-agent')
    p.add_argument('--sign-jwk', metavar='FILE', help='private JWK (OKP Ed25519 or EC P-256) to sign the card')
    p.add_argument('--public-url', metavar='URL',
                   help='base URL to advertise in the card (default http://127.0.0.1:PORT); '
                        'e.g. a wiretap or gateway in front of this agent')
    p.add_argument('--no-compat', action='store_true', help='serve A2A 1.0 only (no 0.3 methods/paths/card fields)')
    p.add_argument('--verbose', action='store_true', help='access log and the SDK\'s warnings on stderr')
    p.add_argument('--gen-jwk', metavar='FILE', help='write a test private JWK to FILE and its public half next to it (x.json -> x.pub.json), then exit')
    p.add_argument('--kty', choices=['OKP', 'EC'], default='OKP', help='key type for --gen-jwk')
    args = p.parse_args()

    if args.gen_jwk:
        gen_jwk(args.gen_jwk, args.kty)
        return
    if not args.port:
        p.error('--port is required')

    compat = not args.no_compat
    card = build_card(args.name, args.public_url or f'http://127.0.0.1:{args.port}', compat)
    if args.sign_jwk:
        card = sign_card(card, args.sign_jwk)

    if not args.verbose:
        # The SDK logs every A2A error it returns (e.g. TaskNotFound) as a
        # warning; tests provoke those on purpose. Unhandled errors still show.
        logging.getLogger('a2a').setLevel(logging.ERROR)
    uvicorn.run(
        build_app(card, compat),
        host='127.0.0.1',
        port=args.port,
        log_level='info' if args.verbose else 'warning',
        access_log=args.verbose,
    )


if __name__ == '__main__':
    main()
