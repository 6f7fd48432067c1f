"""`dbt build` of the staging models (views and their tests) on the test database,
run the way the hub runs it: the Dagster dbt assets of analytics_build_job."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.db import registrations, transaction, webhook_events
from hub.events import create_event, parse_spec
from orchestration.definitions import defs
from tests.dagster_fixtures import dagster_instance, dagster_pg_instance  # noqa: F401

# Every staging model (their relationship tests reach across staging models).
STAGING = sorted(
    (
        key
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] == "analytics" and key.path[-1].startswith("stg_")
    ),
    key=lambda k: k.path,
)


@pytest.fixture(autouse=True)
def _drop_dbt_schemas(engine):
    """dbt's views depend on raw and app columns: leave none behind (the migration tests
    downgrade those tables)."""
    yield
    with engine.begin() as conn:
        for schema in ("staging", "intermediate", "marts", "pii", "analytics"):
            conn.execute(text(f'drop schema if exists "{schema}" cascade'))


def _event():
    with transaction() as conn:
        return create_event(
            conn,
            parse_spec(
                {
                    "title": "dbt Gecesi",
                    "starts_at": "2027-05-06T19:00:00",
                    "ends_at": "2027-05-06T21:00:00",
                    "total_capacity": 10,
                    "currency": "TRY",
                }
            ),
            actor="test",
        )


def _build(instance):
    return defs.resolve_job_def("analytics_build_job").execute_in_process(
        instance=instance, asset_selection=STAGING, raise_on_error=False
    )


def test_dbt_build_of_the_staging_models_passes_on_hub_rows(
    clean_db,
    dagster_instance,  # noqa: F811
):
    event = _event()
    with transaction() as conn:
        conn.execute(
            webhook_events.insert().values(
                source="stripe", event_type="payment_intent.succeeded", body=b"{}", body_size=2
            )
        )
        conn.execute(
            registrations.insert(),
            [
                {
                    "event_id": event.id,
                    "platform": "eventbrite",
                    "platform_registration_id": f"A-{n}",
                    "platform_event_id": "EB-1",
                    "full_name": f"Katılımcı {n}",
                    "email": f"k{n}@example.com",
                    "status": "approved",
                }
                for n in range(3)
            ],
        )

    result = _build(dagster_instance)
    assert result.success
    built = {
        m.event_specific_data.materialization.asset_key
        for m in result.get_asset_materialization_events()
    }
    assert built == set(STAGING)
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(e.event_specific_data.passed for e in checks)  # the models' tests
    with clean_db.connect() as conn:
        staged = conn.execute(
            text(
                "select count(*) from staging.stg_app__registrations where platform = 'eventbrite'"
            )
        ).scalar()
        hooks = conn.execute(text("select count(*) from staging.stg_raw__webhook_events")).scalar()
    assert (staged, hooks) == (3, 1)


def test_dbt_build_fails_when_a_staging_test_fails(clean_db, dagster_instance):  # noqa: F811
    """The models' tests really run: a platform the hub does not know fails the build."""
    event = _event()
    with transaction() as conn:
        conn.execute(
            registrations.insert().values(
                event_id=event.id,
                platform="myspace",
                platform_registration_id="X-1",
                status="approved",
            )
        )
    result = _build(dagster_instance)
    checks = {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    failed = [name for name, passed in checks.items() if not passed]
    assert failed and all("accepted_values" in name for name in failed)
