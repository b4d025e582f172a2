"""Invite links: signed, expiring tokens that admit their holder to one Space.

A link token is a JWT (HS256, audience `podium-invite`) naming the Space and
the link id. The signature proves we issued it; the Space's own state, which
records every link it created with its expiry, decides whether it still admits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import jwt

from libs.domain.errors import FieldViolation, InvalidArgument, PermissionDenied
from libs.domain.reasons import Reason

AUDIENCE = "podium-invite"


@dataclass(frozen=True)
class InviteLink:
    link_id: str
    space_id: str
    token: str
    url: str
    expires_at: datetime


class InviteLinks:
    def __init__(self, secret: str, base_url: str):
        self._secret = secret
        self._base_url = base_url

    def issue(self, space_id: str, link_id: str, expires_at: datetime) -> InviteLink:
        claims = {"aud": AUDIENCE, "sid": space_id, "lid": link_id, "exp": int(expires_at.timestamp())}
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return InviteLink(link_id, space_id, token, f"{self._base_url}{token}", expires_at)

    def link_id_for(self, token: str, space_id: str) -> str:
        """The link id the token carries, if it is ours, unexpired and for `space_id`."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError as e:
            raise PermissionDenied(
                "the invite link has expired; ask the host for a new one", reason=Reason.INVITE_EXPIRED
            ) from e
        except jwt.PyJWTError as e:
            raise InvalidArgument(
                "invite_token is not a valid Podium invite link",
                [FieldViolation("invite_token", "not a token issued by CreateInviteLink")],
                reason=Reason.INVITE_INVALID,
            ) from e
        if claims.get("sid") != space_id:
            raise PermissionDenied(
                "the invite link is for a different Space", reason=Reason.INVITE_OTHER_SPACE
            )
        return str(claims.get("lid", ""))
