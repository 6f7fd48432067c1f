"""The publish policy in one place: lease length, the retry budget of one platform call,
the back-off between runs and how many run slots publishing may take.

Read from ``HUB_PUBLISH_*`` (tests shorten the lease and the back-off this way; a run in
a child process reads the same environment).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from integrations.base import RetryBudget


class PublishPolicy(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_PUBLISH_", extra="ignore")

    # A runner renews its lease every third of this while the platform call runs, so only
    # a dead runner's lease runs out; then the sensor picks the channel up again.
    lease_seconds: float = Field(60.0, gt=0)
    # One platform call (create or update of one event on one platform): at most this many
    # tries within this many seconds, Retry-After waits included. Dagster adds no retries.
    call_attempts: int = Field(4, ge=1)
    call_budget_seconds: float = Field(120.0, gt=0)
    call_base_delay: float = Field(0.5, ge=0)
    call_max_delay: float = Field(30.0, ge=0)
    # After a failed run: wait base * 2^(failures-1), capped (or the platform's
    # Retry-After when longer) before the sensor tries that channel again.
    backoff_base_seconds: float = Field(30.0, ge=0)
    backoff_max_seconds: float = Field(900.0, ge=0)
    # Publish runs in progress at once (the instance runs 4; the rest stay for other work).
    run_slots: int = Field(2, ge=1)

    def budget(self) -> RetryBudget:
        return RetryBudget(
            attempts=self.call_attempts,
            seconds=self.call_budget_seconds,
            base_delay=self.call_base_delay,
            max_delay=self.call_max_delay,
        )

    def backoff(self, failures: int, retry_after: float | None = None) -> timedelta:
        """How long a channel waits after its ``failures``-th failure in a row."""
        seconds = min(
            self.backoff_base_seconds * 2 ** max(failures - 1, 0), self.backoff_max_seconds
        )
        return timedelta(seconds=max(seconds, retry_after or 0.0))


def publish_policy() -> PublishPolicy:
    return PublishPolicy()
