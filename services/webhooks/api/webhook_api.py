"""The WebhookService servicer: requests become registry calls, rows become messages.

Every call is open to users and client gateways alike, and acts for the
caller (docs/security.md, Webhooks).
"""

from __future__ import annotations

from datetime import datetime

from libs.application.executor import RequestKey
from libs.domain.errors import FieldViolation, InvalidArgument, Validator
from libs.grpckit.handlers import USERS_AND_GATEWAYS, Authenticator, Caller, unary
from libs.grpckit.pagination import next_page_token, parse_page
from libs.grpckit.validation import require_id
from podium.webhooks.v1 import webhook_service_pb2 as pb
from podium.webhooks.v1 import webhook_service_pb2_grpc
from podium.webhooks.v1 import webhook_types_pb2 as wt
from services.webhooks.application.webhook_registry import WebhookRegistry, webhook_message
from services.webhooks.domain.event_types import BY_NAME
from services.webhooks.domain.registration import Owner, UrlPolicy, registration
from services.webhooks.infrastructure.deliveries import DEAD, DELIVERED, PENDING, DeliveryRecord

MAX_RETRY_IDS = 1000

_STATES = {
    wt.DELIVERY_STATE_UNSPECIFIED: "",
    wt.DELIVERY_STATE_PENDING: PENDING,
    wt.DELIVERY_STATE_DELIVERED: DELIVERED,
    wt.DELIVERY_STATE_DEAD_LETTERED: DEAD,
}
_STATE_MESSAGES = {stored: number for number, stored in _STATES.items() if stored}


def _owner(caller: Caller) -> Owner:
    return Owner(caller.user_id, caller.is_gateway)


class WebhookApi(webhook_service_pb2_grpc.WebhookServiceServicer):
    def __init__(self, authenticator: Authenticator, registry: WebhookRegistry, url_policy: UrlPolicy):
        self.authenticator = authenticator
        self.registry = registry
        self.url_policy = url_policy

    @unary(callers=USERS_AND_GATEWAYS)
    async def RegisterWebhook(
        self, request: pb.RegisterWebhookRequest, caller: Caller
    ) -> pb.RegisterWebhookResponse:
        owner = _owner(caller)
        wanted = registration(
            request.url, request.event_types, request.space_ids, request.description, self.url_policy
        )
        key = RequestKey.of(owner.key, "RegisterWebhook", request.request_id, request)
        return await self.registry.register(owner, wanted, key)

    @unary(callers=USERS_AND_GATEWAYS)
    async def ListWebhooks(self, request: pb.ListWebhooksRequest, caller: Caller) -> pb.ListWebhooksResponse:
        page = parse_page(request.page_size, request.page_token, "ListWebhooks")
        match page.after:
            case None:
                after = ""
            case (str(after),):
                pass
            case _:
                raise InvalidArgument(
                    "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
                )
        found = await self.registry.owned(_owner(caller), after, page.size + 1)
        shown = found[: page.size]
        return pb.ListWebhooksResponse(
            webhooks=[webhook_message(w) for w in shown],
            next_page_token=next_page_token(
                page, (shown[-1].webhook_id,) if shown else (), more=len(found) > page.size
            ),
        )

    @unary(callers=USERS_AND_GATEWAYS)
    async def DeleteWebhook(
        self, request: pb.DeleteWebhookRequest, caller: Caller
    ) -> pb.DeleteWebhookResponse:
        owner = _owner(caller)
        webhook_id = require_id(request.webhook_id, "webhook_id")
        key = RequestKey.of(owner.key, "DeleteWebhook", request.request_id, request)
        return await self.registry.delete(owner, webhook_id, key)

    @unary(callers=USERS_AND_GATEWAYS)
    async def ListWebhookDeliveries(
        self, request: pb.ListWebhookDeliveriesRequest, caller: Caller
    ) -> pb.ListWebhookDeliveriesResponse:
        webhook_id = require_id(request.webhook_id, "webhook_id")
        if request.state not in _STATES:
            raise InvalidArgument(
                f"state {request.state} is not a DeliveryState", [FieldViolation("state", "a DeliveryState")]
            )
        page = parse_page(request.page_size, request.page_token, [webhook_id, request.state])
        match page.after:
            case None:
                after = 0
            case (int(after),) if 0 <= after < 2**63:
                pass
            case _:
                raise InvalidArgument(
                    "page_token is not a token this API issued", [FieldViolation("page_token", "malformed")]
                )
        found = await self.registry.deliveries_of(
            _owner(caller), webhook_id, _STATES[request.state], after, page.size + 1
        )
        shown = found[: page.size]
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[_delivery(d) for d in shown],
            next_page_token=next_page_token(
                page, (shown[-1].delivery_id,) if shown else (), more=len(found) > page.size
            ),
        )

    @unary(callers=USERS_AND_GATEWAYS)
    async def RetryWebhookDeliveries(
        self, request: pb.RetryWebhookDeliveriesRequest, caller: Caller
    ) -> pb.RetryWebhookDeliveriesResponse:
        owner = _owner(caller)
        webhook_id = require_id(request.webhook_id, "webhook_id")
        check = Validator()
        check.check(len(request.delivery_ids) <= MAX_RETRY_IDS, "delivery_ids", f"at most {MAX_RETRY_IDS}")
        check.check(all(i > 0 for i in request.delivery_ids), "delivery_ids", "ids are positive")
        check.raise_if_any()
        key = RequestKey.of(owner.key, "RetryWebhookDeliveries", request.request_id, request)
        return await self.registry.retry(owner, webhook_id, list(dict.fromkeys(request.delivery_ids)), key)


def _delivery(d: DeliveryRecord) -> wt.WebhookDelivery:
    message = wt.WebhookDelivery(
        delivery_id=d.delivery_id,
        webhook_id=d.webhook_id,
        event_id=d.event_id,
        event_type=BY_NAME.get(d.event_type, wt.WEBHOOK_EVENT_TYPE_UNSPECIFIED),
        space_id=d.space_id,
        state=_STATE_MESSAGES.get(d.state, wt.DELIVERY_STATE_UNSPECIFIED),
        attempts=d.attempts,
        last_status_code=d.last_status,
        last_error=d.last_error,
    )
    _stamp(message.occurred_at, d.occurred_at)
    _stamp(message.last_attempt_time, d.last_attempt_at)
    _stamp(message.next_attempt_time, d.next_attempt_at)
    _stamp(message.delivered_time, d.delivered_at)
    return message


def _stamp(field, when: datetime | None) -> None:
    if when is not None:
        field.FromDatetime(when)
