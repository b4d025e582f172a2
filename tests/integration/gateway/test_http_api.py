"""The gateway's JSON API answers bad input with a clear HTTP status and message."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.auth import gateway_token, token

pytestmark = pytest.mark.integration


async def test_bad_requests_get_the_http_status_of_their_fault_and_say_why(web_stack):
    url = web_stack["url"]
    user = {"Authorization": f"Bearer {token('http-api-user')}"}
    async with aiohttp.ClientSession() as http:

        async def post(path: str, *, headers=None, **kwargs) -> tuple[int, dict]:
            async with http.post(url + path, headers=headers, **kwargs) as response:
                return response.status, await response.json()

        status, body = await post("/api/rpc/room/CreateSpace", json={"title": "no token"})
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
        status, body = await post("/api/rpc/room/CreateSpace", headers=user, data=b"{not json")
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT") and "JSON" in body["message"]
        status, body = await post("/api/rpc/room/CreateSpace", headers=user, json={"titel": "typo"})
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT") and "titel" in body["message"]
        status, body = await post("/api/rpc/room/CreateSpace", headers=user, json={"title": ""})
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT")  # the room's own check, passed on
        status, body = await post("/api/rpc/presence/ReportPresence", headers=user, json={})
        assert (status, body["code"]) == (404, "NOT_FOUND")  # not a call a person makes
        status, body = await post("/api/rpc/room/GetSpace", headers=user, json={"spaceId": "no-such-space"})
        assert (status, body["code"]) == (404, "NOT_FOUND") and body["reason"], body  # the room's ErrorInfo
        async with http.get(url + "/api/ice-servers") as response:
            assert response.status == 401
        async with http.get(url + "/api/ice-servers", headers=user) as response:
            assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
            assert (await response.json())["iceServers"] == web_stack["ice_servers"]
        gateway = {"Authorization": f"Bearer {gateway_token('gw-other')}"}
        status, body = await post("/api/spaces/s1/listen", headers=gateway, json={"sdp": "", "type": "offer"})
        assert (status, body["code"]) == (403, "PERMISSION_DENIED")
        status, body = await post("/api/spaces/s1/listen", headers=user, json={"sdp": "v=0"})
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT") and "offer" in body["message"]
        status, body = await post("/api/rpc/room/CreateSpace", headers=user, json={"title": "SDP checks"})
        space_id = body["space"]["spaceId"]
        await post("/api/rpc/room/StartSpace", headers=user, json={"spaceId": space_id})
        status, body = await post(
            f"/api/spaces/{space_id}/listen", headers=user, json={"sdp": "v=0\r\nnonsense", "type": "offer"}
        )
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT") and "SDP" in body["message"], body
        status, body = await post("/api/sign-in", json={"userId": ""})
        assert (status, body["code"]) == (400, "INVALID_ARGUMENT")
        status, body = await post("/api/sign-in", json={"userId": "ana"})
        assert status == 200 and body["userId"] == "ana" and body["token"]
