"""Syndication: publish events to Meetup, Eventbrite and Luma, pull registrations back."""

from dagster import Definitions

from orchestration.syndication.assets import published_events, pulled_registrations
from orchestration.syndication.schedules import (
    meetup_upcoming_rescan_schedule,
    past_events_rescan_schedule,
    registrations_catch_up_schedule,
)
from orchestration.syndication.sensors import (
    event_publication_sensor,
    meetup_rsvp_poll_sensor,
    publish_events_job,
    pull_registrations_job,
)


def defs() -> Definitions:
    return Definitions(
        assets=[published_events, pulled_registrations],
        jobs=[publish_events_job, pull_registrations_job],
        sensors=[event_publication_sensor, meetup_rsvp_poll_sensor],
        schedules=[
            registrations_catch_up_schedule,
            past_events_rescan_schedule,
            meetup_upcoming_rescan_schedule,
        ],
    )
