from sqlalchemy import text


def test_migrated_schemas_exist(clean_db):
    with clean_db.connect() as conn:
        schemas = set(conn.scalars(text("select schema_name from information_schema.schemata")))
    assert {"raw", "app"} <= schemas


def test_redis_round_trip(redis_client, hub_settings):
    key = f"{hub_settings.redis_namespace}:smoke"
    redis_client.set(key, "1")
    assert redis_client.get(key) == "1"
