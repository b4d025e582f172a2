"""The webhooks service's settings."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from libs.config.settings import PodiumSettings
from services.webhooks.domain.registration import UrlPolicy
from services.webhooks.domain.retry import RetryPolicy


class WebhooksSettings(PodiumSettings):
    webhooks_port: int = Field(50057, ge=0, le=65535, description="Port of the webhooks gRPC server.")
    webhooks_bind_host: str = Field("0.0.0.0", description="Interface the webhooks gRPC server binds.")
    webhooks_allow_http: bool = Field(
        True,
        description="Whether a webhook's URL may be plain http (a development convenience); "
        "production mode refuses to start with it on.",
    )
    webhooks_allow_private_addresses: bool = Field(
        True,
        description="Whether a webhook may aim at a private, loopback or link-local address (a receiver "
        "on the developer's machine); production mode refuses to start with it on.",
    )
    webhooks_max_per_owner: int = Field(
        20, ge=1, description="Webhooks one owner (user or gateway) may have."
    )
    webhooks_request_timeout_seconds: float = Field(
        10, gt=0, description="How long one POST may take, connecting included, before it counts as failed."
    )
    webhooks_retry_base_seconds: float = Field(
        10, gt=0, description="Backoff after a delivery's first failed attempt; it doubles with each failure."
    )
    webhooks_retry_max_delay_seconds: float = Field(
        3600, gt=0, description="Longest backoff between two attempts of a delivery."
    )
    webhooks_max_attempts: int = Field(
        12, ge=1, description="Attempts of a delivery before it is dead-lettered."
    )
    webhooks_max_concurrent_requests: int = Field(
        64, ge=1, description="POSTs in flight at once from one process (one per webhook and Space)."
    )
    webhooks_max_run: int = Field(
        50,
        ge=1,
        description="Deliveries of one webhook and Space a worker takes at once, to send one after the other.",
    )
    webhooks_poll_seconds: float = Field(
        1.0, gt=0, description="How often the worker looks for due deliveries when nothing woke it."
    )
    webhooks_retention_hours: float = Field(
        72,
        gt=0,
        description="How long delivered and dead-lettered deliveries are kept; an event older than this "
        "when the service reads it is not delivered.",
    )
    webhooks_purge_interval_seconds: float = Field(
        300, gt=0, description="How often deliveries older than the retention are deleted."
    )

    def production_problems(self) -> list[str]:
        problems = super().production_problems()
        if self.webhooks_allow_http:
            problems.append(
                "PODIUM_WEBHOOKS_ALLOW_HTTP is on (the development default): events would be POSTed "
                "unencrypted; set it to false"
            )
        if self.webhooks_allow_private_addresses:
            problems.append(
                "PODIUM_WEBHOOKS_ALLOW_PRIVATE_ADDRESSES is on (the development default): anyone who "
                "registers a webhook could make this service call the internal network; set it to false"
            )
        return problems

    def url_policy(self) -> UrlPolicy:
        return UrlPolicy(
            allow_http=self.webhooks_allow_http, allow_private=self.webhooks_allow_private_addresses
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base=timedelta(seconds=self.webhooks_retry_base_seconds),
            cap=timedelta(seconds=self.webhooks_retry_max_delay_seconds),
            max_attempts=self.webhooks_max_attempts,
        )

    def retention(self) -> timedelta:
        return timedelta(hours=self.webhooks_retention_hours)
