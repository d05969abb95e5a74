#!/usr/bin/env python3
"""Drive an A2A agent (or the AgentMesh gateway in front of one) with the a2a-sdk 1.3.0 client.

    python drive.py --url http://127.0.0.1:G [--version 1.0|0.3] [--transport jsonrpc|rest]
                    [--bearer TOKEN] [--extensions URI,...] [--v03-version-header] --steps steps.json

steps.json is a JSON list of operations, run in order:
  {"op": "card"}                                   fetch the agent card
  {"op": "card", "verify_jwk": {...public JWK...}} ... and verify its signatures
  {"op": "card", "raw": true}                      ... and include the card JSON as served
  {"op": "send", "text": "..."}                    SendMessage / message/send (blocking)
  {"op": "send", "data": {...}}                    same with a data part
  {"op": "stream", "text": "..."}                  SendStreamingMessage / message/stream
  {"op": "get", "task": "<id>|$last"}              GetTask / tasks/get
  {"op": "cancel", "task": "<id>|$last"}           CancelTask / tasks/cancel
  {"op": "subscribe", "task": "<id>|$last"}        SubscribeToTask / tasks/resubscribe
Optional keys: send/stream take "return_immediately": true (0.3: blocking=false),
"message_id", "task_id", "context_id"; stream/subscribe take "max_events": N
(stop reading after N events, i.e. disconnect); get takes "history_length".
"$last" is the most recent task id seen in an earlier step.

Output: one JSON line per step, {"ok": result} or {"error": {"type", "code",
"http_status", "message", "data"}}. result is {"card": .., "verified": ..} for
card, {"task": ..} or {"message": ..} for send, a Task for get/cancel, and the
list of StreamResponse events ({"task"|"message"|"statusUpdate"|"artifactUpdate": ..})
for stream/subscribe. Everything is in the SDK's 1.0 ProtoJSON form whatever
the wire version (the 0.3 transports convert 0.3 payloads to 1.0 objects).
code is the JSON-RPC code (jsonrpc) or the HTTP status (rest). Errors never
stop the run; the exit status is 0 unless the arguments or the steps file are bad.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import uuid

from contextlib import aclosing
from typing import Any

import httpx

from google.protobuf.json_format import MessageToDict
from jwt.api_jwk import PyJWK

from a2a.client import A2ACardResolver, ClientCallContext, ClientConfig, ClientFactory
from a2a.client.service_parameters import ServiceParametersFactory, with_a2a_extensions
from a2a.helpers import new_data_part, new_text_part
from a2a.types import (
    AgentCard,
    AgentInterface,
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
)
from a2a.utils.constants import VERSION_HEADER
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier


BINDINGS = {'jsonrpc': 'JSONRPC', 'rest': 'HTTP+JSON'}
# Every asymmetric JWS algorithm PyJWT knows; the key in verify_jwk narrows it further.
VERIFY_ALGS = ['EdDSA', 'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']


class StepError(Exception):
    """A malformed step; reported like any other error, does not stop the run."""


class Driver:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.binding = BINDINGS[args.transport]
        headers = {}
        if args.bearer:
            headers['Authorization'] = f'Bearer {args.bearer}'
        hooks = {}
        if args.version == '0.3' and not args.v03_version_header:
            # The SDK's 0.3 transports send "A2A-Version: 0.3" (and ClientFactory
            # puts "A2A-Version: 1.0" on a shared client for the card fetch).
            # A genuine 0.3-era client sends no such header, so drop it.
            hooks['request'] = [_drop_version_header]
        # One shared httpx client: the bearer header then rides on every request,
        # the card fetch included.
        self.http = httpx.AsyncClient(headers=headers, timeout=30.0, event_hooks=hooks)
        self.card: AgentCard | None = None
        self.clients: dict[bool, Any] = {}  # streaming flag -> SDK client
        self.last_task: str | None = None
        # Service parameters travel as HTTP headers; the 0.3 transports also
        # mirror A2A-Extensions as X-A2A-Extensions.
        self.ctx = None
        if args.extensions:
            params = ServiceParametersFactory.create([with_a2a_extensions(args.extensions.split(','))])
            self.ctx = ClientCallContext(service_parameters=params)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()  # a no-op for the shared httpx client
        await self.http.aclose()

    # --- client construction -------------------------------------------------

    async def fetch_card(self) -> AgentCard:
        self.card = await A2ACardResolver(self.http, self.args.url).get_agent_card()
        return self.card

    def pinned_card(self, card: AgentCard) -> AgentCard:
        """A copy of the card whose only interface is the --transport/--version pair.

        ClientFactory picks the binding from the card (the server's order, or
        ours with use_client_preference) and the protocol version from the
        chosen interface: it always prefers a 1.0 entry, and only a 0.3 entry
        gets the Compat*Transport. So the flags are honoured by handing it a
        card that offers exactly one interface.
        """
        same_binding = [i for i in card.supported_interfaces if i.protocol_binding == self.binding]
        if not same_binding:
            raise StepError(f'the card offers no {self.binding} interface')
        exact = [i for i in same_binding if _major_minor(i.protocol_version) == self.args.version]
        # No 0.3 entry: assume 0.3 is served on the 1.0 URL (the SDK's compat mode).
        chosen = exact[0] if exact else same_binding[0]
        pinned = AgentCard()
        pinned.CopyFrom(card)
        del pinned.supported_interfaces[:]
        pinned.supported_interfaces.append(
            AgentInterface(
                url=chosen.url,
                protocol_binding=self.binding,
                protocol_version=self.args.version,
                tenant=chosen.tenant,
            )
        )
        return pinned

    async def client(self, streaming: bool) -> Any:
        if streaming not in self.clients:
            card = self.card or await self.fetch_card()
            config = ClientConfig(
                streaming=streaming,
                httpx_client=self.http,
                supported_protocol_bindings=[self.binding],
                use_client_preference=True,
            )
            self.clients[streaming] = ClientFactory(config).create(self.pinned_card(card))
        return self.clients[streaming]

    # --- operations ----------------------------------------------------------

    async def run_step(self, step: dict[str, Any]) -> Any:
        if not isinstance(step, dict):
            raise StepError('a step must be a JSON object')
        op = step.get('op')
        if op == 'card':
            return await self.op_card(step)
        if op == 'send':
            return await self.op_send(step)
        if op == 'stream':
            return await self.op_stream(step)
        if op == 'get':
            req = GetTaskRequest(id=self.task_ref(step))
            if 'history_length' in step:
                req.history_length = int(step['history_length'])
            task = await (await self.client(False)).get_task(req, context=self.ctx)
            return self.seen(MessageToDict(task))
        if op == 'cancel':
            task = await (await self.client(False)).cancel_task(
                CancelTaskRequest(id=self.task_ref(step)), context=self.ctx
            )
            return self.seen(MessageToDict(task))
        if op == 'subscribe':
            client = await self.client(True)
            req = SubscribeToTaskRequest(id=self.task_ref(step))
            return await self.collect(client.subscribe(req, context=self.ctx), step)
        raise StepError(f'unknown op {op!r}')

    async def op_card(self, step: dict[str, Any]) -> dict[str, Any]:
        card = await self.fetch_card()
        result: dict[str, Any] = {'card': MessageToDict(card)}
        if step.get('raw'):
            # The resolver only hands back the parsed card, which drops the 0.3
            # compatibility fields; fetch the served JSON once more to show them.
            resp = await self.http.get(self.args.url.rstrip('/') + '/.well-known/agent-card.json')
            result['raw'] = resp.json()
        if 'verify_jwk' in step:
            key = PyJWK(step['verify_jwk'])
            verifier = create_signature_verifier(lambda _kid, _jku: key, VERIFY_ALGS)
            try:
                verifier(card)
                result['verified'] = True
            except SignatureVerificationError as e:
                result['verified'] = False
                result['verify_error'] = f'{type(e).__name__}: {e}'
        return result

    def build_request(self, step: dict[str, Any]) -> SendMessageRequest:
        if 'data' in step:
            part = new_data_part(step['data'])
        elif 'text' in step:
            part = new_text_part(str(step['text']))
        else:
            raise StepError('send/stream needs "text" or "data"')
        message = Message(
            role=Role.ROLE_USER,
            message_id=step.get('message_id') or str(uuid.uuid4()),
            parts=[part],
        )
        if step.get('task_id'):
            message.task_id = self.resolve(step['task_id'])
        if step.get('context_id'):
            message.context_id = step['context_id']
        req = SendMessageRequest(message=message)
        if step.get('return_immediately'):
            req.configuration.return_immediately = True
        return req

    async def op_send(self, step: dict[str, Any]) -> dict[str, Any]:
        client = await self.client(False)
        # With streaming=False the client makes one blocking call and yields
        # its result as a single StreamResponse ({"task":..} or {"message":..}).
        async with aclosing(client.send_message(self.build_request(step), context=self.ctx)) as events:
            async for event in events:
                return self.seen(MessageToDict(event))
        raise StepError('no response')

    async def op_stream(self, step: dict[str, Any]) -> list[dict[str, Any]]:
        client = await self.client(True)
        return await self.collect(client.send_message(self.build_request(step), context=self.ctx), step)

    async def collect(self, stream: Any, step: dict[str, Any]) -> list[dict[str, Any]]:
        limit = step.get('max_events')
        events: list[dict[str, Any]] = []
        # aclosing: leaving early (max_events) must close the HTTP response.
        async with aclosing(stream) as it:
            async for event in it:
                events.append(self.seen(MessageToDict(event)))
                if limit is not None and len(events) >= int(limit):
                    break
        return events

    # --- $last bookkeeping ---------------------------------------------------

    def task_ref(self, step: dict[str, Any]) -> str:
        if 'task' not in step:
            raise StepError(f'{step.get("op")} needs "task"')
        return self.resolve(step['task'])

    def resolve(self, ref: str) -> str:
        if ref == '$last':
            if not self.last_task:
                raise StepError('$last: no task id seen yet')
            return self.last_task
        return ref

    def seen(self, result: dict[str, Any]) -> dict[str, Any]:
        """Remember the task id in a result (a Task, or a StreamResponse member)."""
        candidates = [result]
        for key in ('task', 'message', 'statusUpdate', 'artifactUpdate'):
            if isinstance(result.get(key), dict):
                candidates.append(result[key])
        for c in candidates:
            tid = c.get('taskId') or (c.get('id') if 'status' in c else None)
            if tid:
                self.last_task = tid
                break
        return result


async def _drop_version_header(request: httpx.Request) -> None:  # AsyncClient hooks must be async
    request.headers.pop(VERSION_HEADER, None)


def _major_minor(version: str) -> str:
    return '.'.join(version.split('.')[:2])


def describe_error(e: BaseException, transport: str) -> dict[str, Any]:
    """Flatten an exception into the {"error": ...} shape.

    code is the JSON-RPC error code for --transport jsonrpc and the HTTP status
    for rest. The SDK raises typed errors but keeps neither number, so the
    JSON-RPC code comes back from the error class and the HTTP status from the
    httpx error the SDK chains as __cause__.
    """
    http_status = getattr(e, 'status_code', None)  # AgentCardResolutionError
    cause = e.__cause__
    while cause is not None and http_status is None:
        if isinstance(cause, httpx.HTTPStatusError):
            http_status = cause.response.status_code
        cause = cause.__cause__

    if transport == 'rest':
        code = http_status
    else:
        code = JSON_RPC_ERROR_CODE_MAP.get(type(e))
        # Codes the SDK has no class for surface as "JSON-RPC Error <code>: ..."
        m = re.match(r'JSON-RPC Error (-?\d+)', str(e)) if code is None else None
        if m:
            code = int(m.group(1))
    return {
        'type': type(e).__name__,
        'code': code,
        'http_status': http_status,
        'message': getattr(e, 'message', None) or str(e),
        'data': getattr(e, 'data', None),
    }


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + '\n')
    sys.stdout.flush()


async def run(args: argparse.Namespace, steps: list[Any]) -> None:
    driver = Driver(args)
    try:
        for step in steps:
            try:
                emit({'ok': await driver.run_step(step)})
            except Exception as e:  # every failure is reported, none is fatal
                emit({'error': describe_error(e, args.transport)})
    finally:
        await driver.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--url', required=True, help='base URL; the card is read from URL/.well-known/agent-card.json')
    p.add_argument('--version', choices=['1.0', '0.3'], default='1.0')
    p.add_argument('--transport', choices=sorted(BINDINGS), default='jsonrpc')
    p.add_argument('--bearer', metavar='TOKEN', help='sent as "Authorization: Bearer TOKEN" on every request')
    p.add_argument('--extensions', metavar='URI,...', help='request these extensions (A2A-Extensions header)')
    p.add_argument('--v03-version-header', action='store_true',
                   help='with --version 0.3, keep the SDK\'s "A2A-Version: 0.3" header instead of sending none')
    p.add_argument('--steps', required=True, metavar='FILE', help='JSON list of steps ("-" for stdin)')
    args = p.parse_args()
    try:
        text = sys.stdin.read() if args.steps == '-' else open(args.steps, encoding='utf-8').read()
        steps = json.loads(text)
    except (OSError, ValueError) as e:
        p.error(f'--steps: {e}')
    if not isinstance(steps, list):
        p.error('--steps: expected a JSON list')
    asyncio.run(run(args, steps))


if __name__ == '__main__':
    main()
