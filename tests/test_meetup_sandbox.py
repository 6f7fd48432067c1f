"""The Meetup emulator over real HTTP: OAuth2, GraphQL shapes, RSVPs, faults, persistence.

The emulator validates and executes with Meetup's real schema (graphql-core over
contracts/meetup-gql-ext.introspection.json): the fields it used to invent (Event.venue,
isOnline, going, waiting, rsvpsOpen, Group.upcomingEvents, rsvpSettings.rsvpLimit,
``success`` on the RSVP payloads) are refused here, statuses are the real EventStatus
values and times are printed with seconds.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import (
    MEETUP_CLIENT_ID,
    MEETUP_CLIENT_SECRET,
    MEETUP_GROUP_URLNAME,
    MEETUP_REDIRECT_URI,
)
from integrations.sandbox.meetup import create_app

CREATE = """
mutation create($input: CreateEventInput!) {
  createEvent(input: $input) {
    event { id token eventUrl status dateTime endTime duration maxTickets waitlistMode }
    errors { code field message }
  }
}"""
RSVPS = """
query rsvps($id: ID!, $first: Int, $after: String, $statuses: [RsvpStatus!]) {
  event(id: $id) {
    id
    rsvps(first: $first, after: $after, filter: {rsvpStatus: $statuses}) {
      totalCount yesCount waitlistCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id status guestsCount updated isHost member { id name } } }
    }
  }
}"""


def event_input(**overrides: Any) -> dict[str, Any]:
    data = {
        "groupUrlname": MEETUP_GROUP_URLNAME,
        "title": "Python İstanbul #42",
        "description": "<p>Talks &amp; pizza</p>",
        "startDateTime": "2027-06-01T19:00:00+03:00",
        "duration": "PT2H30M",
        "selfRsvp": False,
    }
    data.update(overrides)
    return data


@pytest.fixture()
def state_path(tmp_path: Path) -> str:
    return str(tmp_path / "meetup.sqlite")


@pytest.fixture()
def server(state_path: str) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(state_path))
    yield handle
    handle.stop()


@pytest.fixture()
def http(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def authorize(http: httpx.Client, state: str = "st4te") -> str:
    response = http.get(
        "/oauth2/authorize",
        params={
            "client_id": MEETUP_CLIENT_ID,
            "response_type": "code",
            "redirect_uri": MEETUP_REDIRECT_URI,
            "state": state,
        },
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(MEETUP_REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


def token_request(http: httpx.Client, **form: str) -> httpx.Response:
    base = {"client_id": MEETUP_CLIENT_ID, "client_secret": MEETUP_CLIENT_SECRET}
    return http.post("/oauth2/access", data={**base, **form})


def get_tokens(http: httpx.Client) -> dict[str, Any]:
    response = token_request(
        http,
        grant_type="authorization_code",
        redirect_uri=MEETUP_REDIRECT_URI,
        code=authorize(http),
    )
    assert response.status_code == 200, response.text
    return response.json()


class Gql:
    def __init__(self, http: httpx.Client, token: str) -> None:
        self.http = http
        self.token = token

    def raw(self, query: str, variables: dict | None = None, path: str = "/gql-ext"):
        return self.http.post(
            path,
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.token}"},
        )

    def __call__(self, query: str, variables: dict | None = None) -> dict[str, Any]:
        response = self.raw(query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    def create(self, **overrides: Any) -> dict[str, Any]:
        body = self(CREATE, {"input": event_input(**overrides)})
        payload = body["data"]["createEvent"]
        assert payload["errors"] is None, payload  # "Null if creation was successful"
        return payload["event"]


@pytest.fixture()
def gql(http: httpx.Client) -> Gql:
    return Gql(http, get_tokens(http)["access_token"])


@pytest.fixture(scope="module")
def shared_gql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gql]:
    """One emulator for the many small schema cases (each makes its own event)."""
    handle = serve_in_thread(create_app(str(tmp_path_factory.mktemp("meetup") / "m.sqlite")))
    with httpx.Client(base_url=handle.url, timeout=10) as client:
        yield Gql(client, get_tokens(client)["access_token"])
    handle.stop()


# --------------------------------------------------------------------------- OAuth2


def test_oauth_code_flow_refresh_rotation_and_errors(http: httpx.Client) -> None:
    bad = http.get(
        "/oauth2/authorize",
        params={"client_id": "nope", "response_type": "code", "redirect_uri": "http://x/cb"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client"

    code = authorize(http)
    wrong_secret = http.post(
        "/oauth2/access",
        data={
            "client_id": MEETUP_CLIENT_ID,
            "client_secret": "wrong",
            "grant_type": "authorization_code",
            "redirect_uri": MEETUP_REDIRECT_URI,
            "code": code,
        },
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"

    first = token_request(
        http, grant_type="authorization_code", redirect_uri=MEETUP_REDIRECT_URI, code=code
    )
    assert first.status_code == 200
    tokens = first.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["access_token"] and tokens["refresh_token"]

    reused = token_request(
        http, grant_type="authorization_code", redirect_uri=MEETUP_REDIRECT_URI, code=code
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"

    refreshed = token_request(
        http, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]

    spent = token_request(http, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert spent.status_code == 400
    assert spent.json()["error"] == "invalid_grant"

    unsupported = token_request(http, grant_type="password")
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_unregistered_redirect_uri_is_refused_without_a_redirect(http: httpx.Client) -> None:
    for uri in (
        "https://evil.example/cb",
        MEETUP_REDIRECT_URI + "/extra",
        MEETUP_REDIRECT_URI[:-1],
    ):
        refused = http.get(
            "/oauth2/authorize",
            params={
                "client_id": MEETUP_CLIENT_ID,
                "response_type": "code",
                "redirect_uri": uri,
                "state": "s",
            },
        )
        assert refused.status_code == 400, uri
        assert "Location" not in refused.headers  # no code is ever sent to that address
        assert refused.json()["error"] == "invalid_request"
        assert "redirect_uri" in refused.json()["error_description"]

    code = authorize(http)  # issued for the registered URI
    elsewhere = token_request(
        http, grant_type="authorization_code", redirect_uri="https://evil.example/cb", code=code
    )
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_grant"


def test_revoked_refresh_token_and_its_access_tokens(http: httpx.Client) -> None:
    tokens = get_tokens(http)
    gql = Gql(http, tokens["access_token"])
    assert gql("{ self { id name } }")["data"]["self"]["name"]
    revoked = http.post("/_sandbox/oauth/revoke", json={"refresh_token": tokens["refresh_token"]})
    assert revoked.json()["revoked"] == 2
    assert gql.raw("{ self { id } }").status_code == 401
    again = token_request(http, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_graphql_requires_a_valid_unexpired_token(state_path: str) -> None:
    handle = serve_in_thread(create_app(state_path, access_token_ttl=0))
    try:
        with httpx.Client(base_url=handle.url) as http:
            missing = http.post("/gql-ext", json={"query": "{ self { id } }"})
            assert missing.status_code == 401
            error = missing.json()["errors"][0]
            assert error["extensions"]["code"] == "UNAUTHENTICATED"
            assert "token" in error["message"].lower()
            expired = Gql(http, get_tokens(http)["access_token"]).raw("{ self { id } }")
            assert expired.status_code == 401
    finally:
        handle.stop()


# --------------------------------------------------------------------------- GraphQL


def test_create_draft_then_publish(gql: Gql) -> None:
    event = gql.create(publishStatus="DRAFT", rsvpSettings={"rsvpLimit": 20}, venueId="online")
    assert event["id"].isdigit() and len(event["id"]) == 9
    assert event["status"] == "DRAFT"
    # a sandbox event's public link is the sandbox's own page, never meetup.com
    assert event["eventUrl"] == (
        f"{gql.http.base_url}/{MEETUP_GROUP_URLNAME}/events/{event['id']}/"
    )
    page = httpx.get(event["eventUrl"])
    assert page.status_code == 200 and "Python İstanbul #42" in page.text
    assert event["dateTime"] == "2027-06-01T19:00:00+03:00"  # with seconds, like the live API
    assert event["endTime"] == "2027-06-01T21:30:00+03:00"
    assert event["duration"] == "PT2H30M"
    assert (event["maxTickets"], event["waitlistMode"]) == (20, "AUTO")

    published = gql(
        "mutation($id: ID!) { publishEventDraft(input: {eventId: $id}) "
        "{ event { id status token } errors { code field message } } }",
        {"id": event["id"]},
    )["data"]["publishEventDraft"]
    assert published["errors"] is None
    assert published["event"]["status"] == "ACTIVE"  # EventStatus has no PUBLISHED
    assert published["event"]["token"] == event["token"]

    again = gql(
        "mutation($id: ID!) { publishEventDraft(input: {eventId: $id}) { errors { code field } } }",
        {"id": event["id"]},
    )["data"]["publishEventDraft"]
    assert again["errors"][0]["field"] == "eventId"

    deleted = gql(
        "mutation($id: ID!) { deleteEvent(input: {eventId: $id, removeFromCalendar: true}) "
        "{ success errors { code } } }",
        {"id": event["id"]},
    )["data"]["deleteEvent"]
    assert deleted == {"success": True, "errors": None}
    assert gql("query($id: ID!) { event(id: $id) { id } }", {"id": event["id"]})["data"] == {
        "event": None
    }

    default = gql.create(title="Published at once")
    assert default["status"] == "ACTIVE"
    assert int(default["id"]) == int(event["id"]) + 1
    assert (default["maxTickets"], default["waitlistMode"]) == (0, "AUTO")

    cancelled = gql(
        "mutation($id: ID!) { deleteEvent(input: {eventId: $id, removeFromCalendar: false}) "
        "{ success } }",
        {"id": default["id"]},
    )["data"]["deleteEvent"]
    assert cancelled == {"success": True}
    status = gql("query($id: ID!) { event(id: $id) { status } }", {"id": default["id"]})
    assert status["data"]["event"]["status"] == "CANCELLED"

    past = gql.create(startDateTime="2024-03-01T19:00:00+03:00")
    assert past["status"] == "PAST"


def test_mutation_input_errors_have_code_field_message(gql: Gql) -> None:
    body = gql(
        CREATE,
        {
            "input": event_input(
                groupUrlname="someone-elses-group",
                title="x" * 81,
                duration="2 hours",
                startDateTime="next tuesday",
            )
        },
    )
    payload = body["data"]["createEvent"]
    assert payload["event"] is None
    by_field = {e["field"]: e for e in payload["errors"]}
    assert set(by_field) == {"groupUrlname", "startDateTime", "title", "duration"}
    for error in payload["errors"]:
        assert set(error) == {"code", "field", "message"}
        assert error["code"] and error["message"]
    assert "80" in by_field["title"]["message"]

    # the schema's non-null fields (title, description, ...) are checked before anything
    missing = gql(CREATE, {"input": {"title": "x"}})
    assert "data" not in missing
    assert {e["extensions"]["classification"] for e in missing["errors"]} == {"ValidationError"}
    assert "description" in missing["errors"][0]["message"]

    unknown = gql(
        'mutation { editEvent(input: {eventId: "999", title: "t"}) '
        "{ event { id } errors { code field message } } }"
    )["data"]["editEvent"]
    assert unknown["event"] is None
    assert unknown["errors"][0]["field"] == "eventId"
    assert unknown["errors"][0]["code"] == "EVENT_NOT_FOUND"


def test_schema_errors_are_http_200_validation_errors(gql: Gql) -> None:
    response = gql.raw("query {\n  event(id: 1) { id nonsense }\n}")
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    error = body["errors"][0]
    assert error["extensions"]["classification"] == "ValidationError"
    assert error["locations"] == [{"line": 2, "column": 21}]
    assert "nonsense" in error["message"]

    unknown_op = gql("mutation { launchRocket(input: {}) { errors { code } } }")
    assert unknown_op["errors"][0]["extensions"]["classification"] == "ValidationError"
    assert "launchRocket" in unknown_op["errors"][0]["message"]

    unknown_input = gql(CREATE, {"input": event_input(colour="red")})
    assert unknown_input["errors"][0]["extensions"]["classification"] == "ValidationError"
    assert gql.http.get("/_sandbox/health").json() == {"ok": True}

    syntax = gql("{ event(id: 1) { id ")
    assert syntax["errors"][0]["extensions"]["classification"] == "InvalidSyntax"


def test_aliases_fragments_variables_and_legacy_path(gql: Gql) -> None:
    event = gql.create()
    query = """
    query one($id: ID!, $withGroup: Boolean = true) {
      first: event(id: $id) { ...Basic group @include(if: $withGroup) { urlname } }
      ... on Query { second: event(id: $id) { id __typename } }
    }
    fragment Basic on Event { id title }
    query other { self { id } }
    """
    response = gql.http.post(
        "/gql",
        json={"query": query, "variables": {"id": event["id"]}, "operationName": "one"},
        headers={"Authorization": f"Bearer {gql.token}"},
    )
    data = response.json()["data"]
    assert data["first"] == {
        "id": event["id"],
        "title": "Python İstanbul #42",
        "group": {"urlname": MEETUP_GROUP_URLNAME},
    }
    assert data["second"] == {"id": event["id"], "__typename": "Event"}
    assert gql('{ event(id: "1") { id } }')["data"] == {"event": None}
    other = gql.http.post(
        "/gql-ext",
        json={"query": query, "variables": {"id": event["id"]}, "operationName": "other"},
        headers={"Authorization": f"Bearer {gql.token}"},
    )
    assert other.json() == {"data": {"self": {"id": "186300000"}}}
    ambiguous = gql(query, {"id": event["id"]})  # two operations, no operationName
    assert ambiguous["errors"][0]["extensions"]["classification"] == "ValidationError"


def test_group_events_connection_filters_by_time(gql: Gql) -> None:
    ids = [gql.create(startDateTime=f"2027-07-0{d}T19:00:00+03:00")["id"] for d in (1, 2, 3)]
    draft = gql.create(publishStatus="DRAFT", startDateTime="2027-07-02T19:00:00+03:00")
    query = """query($u: String!, $from: DateTime, $to: DateTime, $after: String) {
      groupByUrlname(urlname: $u) {
        events(first: 2, after: $after, filter: {afterDateTime: $from, beforeDateTime: $to}) {
          totalCount pageInfo { hasNextPage endCursor } edges { node { id status } }
        }
      }
    }"""
    page = gql(query, {"u": MEETUP_GROUP_URLNAME})["data"]["groupByUrlname"]["events"]
    assert page["totalCount"] == 4 and page["pageInfo"]["hasNextPage"]
    rest = gql(query, {"u": MEETUP_GROUP_URLNAME, "after": page["pageInfo"]["endCursor"]})
    seen = [e["node"]["id"] for e in page["edges"]] + [
        e["node"]["id"] for e in rest["data"]["groupByUrlname"]["events"]["edges"]
    ]
    assert seen == [*ids, draft["id"]]
    window = gql(
        query,
        {"u": MEETUP_GROUP_URLNAME, "from": "2027-07-02T18:59:00+03:00", "to": "2027-07-02T16:01Z"},
    )["data"]["groupByUrlname"]["events"]
    assert {e["node"]["id"] for e in window["edges"]} == {ids[1], draft["id"]}
    drafts = gql(
        "query($u: String!) { groupByUrlname(urlname: $u) { events(filter: {status: [DRAFT]}) "
        "{ edges { node { id status } } } } }",
        {"u": MEETUP_GROUP_URLNAME},
    )["data"]["groupByUrlname"]["events"]["edges"]
    assert [e["node"] for e in drafts] == [{"id": draft["id"], "status": "DRAFT"}]
    assert gql('{ groupByUrlname(urlname: "other") { id } }')["data"] == {"groupByUrlname": None}


# --------------------------------------------------------------------------- RSVPs


def simulate(http: httpx.Client, event_id: str, count: int, seed: int = 7) -> list[str]:
    response = http.post(
        "/_sandbox/simulate/registrations",
        json={"event_id": event_id, "count": count, "seed": seed},
    )
    assert response.status_code == 200, response.text
    return response.json()["ids"]


def test_rsvp_limit_waitlist_default_filter_and_promotion(gql: Gql) -> None:
    event = gql.create(rsvpSettings={"rsvpLimit": 3})
    ids = simulate(gql.http, event["id"], 5)
    assert all(i.isdigit() and len(i) == 9 for i in ids)

    default = gql(RSVPS, {"id": event["id"]})["data"]["event"]["rsvps"]
    assert [e["node"]["status"] for e in default["edges"]] == ["YES"] * 3  # YES+ATTENDED only
    assert (default["totalCount"], default["yesCount"], default["waitlistCount"]) == (3, 3, 2)

    every = gql(RSVPS, {"id": event["id"], "statuses": ["YES", "WAITLIST", "NO"]})
    nodes = [e["node"] for e in every["data"]["event"]["rsvps"]["edges"]]
    assert [n["id"] for n in nodes] == ids
    assert [n["status"] for n in nodes] == ["YES", "YES", "YES", "WAITLIST", "WAITLIST"]
    for node in nodes:
        assert set(node["member"]) == {"id", "name"}  # no e-mail, no phone
        assert node["member"]["name"] and node["isHost"] is False

    cancelled = gql.http.post("/_sandbox/simulate/status", json={"rsvp_id": ids[0], "status": "NO"})
    assert cancelled.json()["rsvp"]["status"] == "NO"
    after = gql(RSVPS, {"id": event["id"], "statuses": ["YES", "WAITLIST", "NO"]})
    statuses = [e["node"]["status"] for e in after["data"]["event"]["rsvps"]["edges"]]
    assert statuses == ["NO", "YES", "YES", "YES", "WAITLIST"]  # the waitlist moved up

    raise_limit = gql(
        "mutation($id: ID!) { editEvent(input: {eventId: $id, rsvpSettings: {rsvpLimit: 0}}) "
        "{ event { maxTickets waitlistMode } errors { code } } }",
        {"id": event["id"]},
    )["data"]["editEvent"]
    assert raise_limit["event"] == {"maxTickets": 0, "waitlistMode": "AUTO"}
    final = gql(RSVPS, {"id": event["id"], "statuses": ["WAITLIST"]})["data"]["event"]["rsvps"]
    assert final["totalCount"] == 0


def test_rsvp_cursors_are_base64_offsets_and_first_is_capped(gql: Gql) -> None:
    event = gql.create()
    ids = simulate(gql.http, event["id"], 250)
    page = gql(RSVPS, {"id": event["id"], "first": 500})["data"]["event"]["rsvps"]
    assert len(page["edges"]) == 200
    assert page["edges"][0]["cursor"] == "MA=="
    assert base64.b64decode(page["pageInfo"]["endCursor"]).decode() == "199"
    assert page["pageInfo"]["hasNextPage"] is True
    rest = gql(RSVPS, {"id": event["id"], "first": 100, "after": page["pageInfo"]["endCursor"]})
    rest_page = rest["data"]["event"]["rsvps"]
    assert [e["node"]["id"] for e in page["edges"] + rest_page["edges"]] == ids
    assert rest_page["pageInfo"]["hasNextPage"] is False
    bad = gql(RSVPS, {"id": event["id"], "after": "%%%"})
    assert "Invalid cursor" in bad["errors"][0]["message"]
    assert bad["errors"][0]["extensions"]["classification"] == "DataFetchingException"
    assert bad["errors"][0]["path"] == ["event", "rsvps"]
    wrong_type = gql(RSVPS, {"id": event["id"], "first": "ten"})
    assert wrong_type["errors"][0]["extensions"]["classification"] == "ValidationError"


def test_simulation_refuses_drafts_and_closed_events(gql: Gql) -> None:
    draft = gql.create(publishStatus="DRAFT")
    refused = gql.http.post(
        "/_sandbox/simulate/registrations", json={"event_id": draft["id"], "count": 1}
    )
    assert refused.status_code == 409
    event = gql.create()
    closed = gql(
        "mutation($id: ID!) { closeEventRsvps(input: {eventId: $id}) { errors { code } } }",
        {"id": event["id"]},
    )
    assert closed["data"]["closeEventRsvps"]["errors"] is None
    assert (
        gql.http.post(
            "/_sandbox/simulate/registrations", json={"event_id": event["id"], "count": 1}
        ).status_code
        == 409
    )
    missing = gql.http.post("/_sandbox/simulate/registrations", json={"event_id": "1", "count": 1})
    assert missing.status_code == 404


def test_self_rsvp_makes_the_host_attend(gql: Gql) -> None:
    event = gql.create(selfRsvp=True)
    rsvps = gql(RSVPS, {"id": event["id"]})["data"]["event"]["rsvps"]["edges"]
    assert [(e["node"]["isHost"], e["node"]["status"]) for e in rsvps] == [(True, "YES")]


# --------------------------------------------------------------------------- faults, state


def test_rate_limit_and_server_errors(gql: Gql) -> None:
    http = gql.http
    http.post("/_sandbox/config", json={"rate_limit": {"limit": 1, "window_seconds": 30}})
    assert gql.raw("{ self { id } }").status_code == 200
    limited = gql.raw("{ self { id } }")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 29
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    http.post("/_sandbox/reset")

    http.post("/_sandbox/config", json={"fail_next": {"count": 1, "status": 502}})
    failed = gql.raw("{ self { id } }")
    assert failed.status_code == 502
    assert failed.json()["errors"][0]["message"]
    assert gql.raw("{ self { id } }").status_code == 200


def test_state_survives_a_restart(state_path: str) -> None:
    first = serve_in_thread(create_app(state_path))
    with httpx.Client(base_url=first.url) as http:
        tokens = get_tokens(http)
        gql = Gql(http, tokens["access_token"])
        event = gql.create(rsvpSettings={"rsvpLimit": 2})
        ids = simulate(http, event["id"], 3)
    first.app.extensions["sandbox"].store.close()
    first.stop()

    second = serve_in_thread(create_app(state_path))
    try:
        with httpx.Client(base_url=second.url) as http:
            gql = Gql(http, tokens["access_token"])  # the token survived too
            again = gql(RSVPS, {"id": event["id"], "statuses": ["YES", "WAITLIST"]})["data"][
                "event"
            ]
            assert [e["node"]["id"] for e in again["rsvps"]["edges"]] == ids
            assert again["rsvps"]["waitlistCount"] == 1
            newer = gql.create(title="After restart")
            assert int(newer["id"]) == int(event["id"]) + 1  # the counter survived
            more = simulate(http, newer["id"], 1)
            assert int(more[0]) == int(ids[-1]) + 1
            refreshed = token_request(
                http, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
            )
            assert refreshed.status_code == 200
    finally:
        second.stop()


# --------------------------------------------------------------------------- the real schema


INVENTED_FIELDS = {
    "Event.venue": "query($id: ID!) { event(id: $id) { venue { id } } }",
    "Event.isOnline": "query($id: ID!) { event(id: $id) { isOnline } }",
    "Event.going": "query($id: ID!) { event(id: $id) { going } }",
    "Event.waiting": "query($id: ID!) { event(id: $id) { waiting } }",
    "Event.rsvpsOpen": "query($id: ID!) { event(id: $id) { rsvpsOpen } }",
    "RsvpOpenSettings.rsvpLimit": (
        "query($id: ID!) { event(id: $id) { rsvpSettings { rsvpLimit } } }"
    ),
    "Group.upcomingEvents": (
        "query($id: ID!) { event(id: $id) { group { upcomingEvents { totalCount } } } }"
    ),
    "CloseEventRsvpsPayload.success": (
        "mutation($id: ID!) { closeEventRsvps(input: {eventId: $id}) { success } }"
    ),
    "OpenEventRsvpsPayload.success": (
        "mutation($id: ID!) { openEventRsvps(input: {eventId: $id}) { success } }"
    ),
}


@pytest.mark.parametrize("name", sorted(INVENTED_FIELDS))
def test_fields_the_live_api_lacks_are_validation_errors(shared_gql: Gql, name: str) -> None:
    gql = shared_gql
    event = gql.create()
    ref = {"id": event["id"]}
    gql("mutation($id: ID!) { closeEventRsvps(input: {eventId: $id}) { errors { code } } }", ref)
    reply = gql(INVENTED_FIELDS[name], ref)
    assert "data" not in reply, reply
    error = reply["errors"][0]
    assert error["extensions"]["classification"] == "ValidationError"
    assert error["locations"] and name.split(".")[-1] in error["message"]
    # nothing ran: the RSVPs closed above were not re-opened by the refused mutation
    still = gql("query($id: ID!) { event(id: $id) { rsvpSettings { rsvpsClosed } } }", ref)
    assert still["data"]["event"]["rsvpSettings"]["rsvpsClosed"] is True


def test_real_fields_work_rsvp_payload_event_and_rsvps_closed(gql: Gql) -> None:
    event = gql.create(rsvpSettings={"rsvpLimit": 7})
    closed = gql(
        "mutation($id: ID!) { closeEventRsvps(input: {eventId: $id}) "
        "{ event { id maxTickets rsvpSettings { rsvpsClosed } } errors { code } } }",
        {"id": event["id"]},
    )["data"]["closeEventRsvps"]
    assert closed == {
        "event": {"id": event["id"], "maxTickets": 7, "rsvpSettings": {"rsvpsClosed": True}},
        "errors": None,
    }
    opened = gql(
        "mutation($id: ID!) { openEventRsvps(input: {eventId: $id}) "
        "{ event { rsvpSettings { rsvpsClosed } } } }",
        {"id": event["id"]},
    )["data"]["openEventRsvps"]
    assert opened == {"event": {"rsvpSettings": {"rsvpsClosed": False}}}
    details = gql(
        "query($id: ID!) { event(id: $id) { eventType venues { id venueType } "
        "group { urlname timezone } } }",
        {"id": event["id"]},
    )["data"]["event"]
    assert details["eventType"] == "PHYSICAL" and details["venues"] == []
    assert details["group"] == {"urlname": MEETUP_GROUP_URLNAME, "timezone": "Europe/Istanbul"}


BAD_INPUTS = {
    "amount is Int!, not a float": {"feeOption": {"amount": 150.5, "currency": "TRY"}},
    "EventFeeOption has no 'required'": {"feeOption": {"amount": 150, "required": True}},
    "paymentMethod enum (CASH | PAYPAL)": {"feeOption": {"amount": 150, "paymentMethod": "CARD"}},
    "EventFeeCurrency enum": {"feeOption": {"amount": 150, "currency": "MXN"}},
    "PublishStatus enum": {"publishStatus": "PUBLISHED_NOW"},
    "nested RsvpSettings field": {"rsvpSettings": {"rsvpLimit": 5, "waitlist": True}},
    "rsvpLimit is Int": {"rsvpSettings": {"rsvpLimit": "five"}},
    "unknown top-level field": {"venue": {"name": "Kadıköy"}},
    "String, not an object": {"title": {"en": "Python"}},
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_wrong_input_types_enums_and_nested_fields_change_nothing(
    shared_gql: Gql, case: str
) -> None:
    gql = shared_gql
    before = gql('{ groupByUrlname(urlname: "istanbul-python") { events { totalCount } } }')
    reply = gql(CREATE, {"input": event_input(**BAD_INPUTS[case])})
    assert "data" not in reply, reply  # refused as a whole, before any resolver ran
    error = reply["errors"][0]
    assert error["extensions"] == {"classification": "ValidationError"}
    assert error["locations"] and error["message"]
    after = gql('{ groupByUrlname(urlname: "istanbul-python") { events { totalCount } } }')
    assert after == before  # no event was created


def test_paid_event_fee_settings_and_no_waitlist(gql: Gql) -> None:
    event = gql.create(
        feeOption={"amount": 150, "currency": "TRY", "paymentMethod": "CASH"},
        rsvpSettings={"rsvpLimit": 2},
    )
    assert event["waitlistMode"] == "OFF"  # "only ... where payments are required and ... limit"
    fee = gql(
        "query($id: ID!) { event(id: $id) { feeSettings { amount currency accepts required } } }",
        {"id": event["id"]},
    )["data"]["event"]["feeSettings"]
    assert fee == {"amount": 150.0, "currency": "TRY", "accepts": "CASH", "required": True}
    assert len(simulate(gql.http, event["id"], 5)) == 2  # full: nobody waits, nobody gets in

    too_much = gql(CREATE, {"input": event_input(feeOption={"amount": 1_000_001})})
    error = too_much["data"]["createEvent"]["errors"][0]
    assert error["field"] == "feeOption.amount" and "1000000" in error["message"]

    free_again = gql(
        "mutation($id: ID!) { editEvent(input: {eventId: $id, feeOption: {enabled: false}}) "
        "{ event { feeSettings { amount } waitlistMode } errors { code } } }",
        {"id": event["id"]},
    )["data"]["editEvent"]
    assert free_again == {"event": {"feeSettings": None, "waitlistMode": "AUTO"}, "errors": None}


def test_members_hide_their_email(gql: Gql) -> None:
    event = gql.create()
    simulate(gql.http, event["id"], 1)
    reply = gql(
        "query($id: ID!) { event(id: $id) { rsvps { edges { node { member { id email } } } } } }",
        {"id": event["id"]},
    )
    assert reply["data"]["event"] is None  # Member.email is String!: the null propagates
    assert "email" in reply["errors"][0]["message"]
    assert reply["errors"][0]["extensions"]["classification"] == "DataFetchingException"


def test_unmodelled_fields_say_so_instead_of_inventing(gql: Gql) -> None:
    reply = gql('{ eventSearch(filter: {query: "python", lat: 41.0, lon: 29.0}) { totalCount } }')
    assert "not emulated" in reply["errors"][0]["message"]


def test_a_state_file_from_the_older_emulator_still_reads(state_path: str) -> None:
    """`make up` state written before the schema-built emulator keeps working."""
    from integrations.sandbox.common import SandboxStore

    old = SandboxStore(state_path)
    old.insert(
        "event",
        "310000001",
        {
            "id": "310000001",
            "token": "abc123def456",
            "groupUrlname": MEETUP_GROUP_URLNAME,
            "title": "Old shape",
            "description": "<p>x</p>",
            "dateTime": "2027-05-01T19:00+03:00",
            "duration": "PT2H",
            "venueId": None,
            "status": "PUBLISHED",
            "rsvpLimit": 10,
            "guestLimit": 0,
            "rsvpOpenTime": None,
            "rsvpCloseTime": None,
            "rsvpsOpen": False,
            "fee": {"amount": 150.0, "currency": "TRY", "required": True, "accepts": "CARDS"},
            "howToFindUs": None,
            "createdTime": "2026-11-01T10:00:00Z",
        },
        scope=MEETUP_GROUP_URLNAME,
    )
    old.close()
    handle = serve_in_thread(create_app(state_path))
    try:
        with httpx.Client(base_url=handle.url) as http:
            gql = Gql(http, get_tokens(http)["access_token"])
            event = gql(
                '{ event(id: "310000001") { status dateTime rsvpSettings { rsvpsClosed } '
                "feeSettings { amount accepts } } }"
            )["data"]["event"]
            assert event == {
                "status": "ACTIVE",
                "dateTime": "2027-05-01T19:00:00+03:00",
                "rsvpSettings": {"rsvpsClosed": True},
                "feeSettings": {"amount": 150.0, "accepts": "CASH"},
            }
    finally:
        handle.stop()
