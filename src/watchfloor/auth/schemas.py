"""Request and response bodies of the auth API: log-in, MFA, users, grants, API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, EmailStr, Field, StringConstraints, model_validator

from watchfloor.auth.roles import Role, ScopeKind
from watchfloor.schemas import StrictModel

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._@+-]+$"
    ),
]
# No control characters (PostgreSQL refuses NUL in text; nobody types the others).
PLAIN = r"^[^\x00-\x1f\x7f]*$"
Plain200 = Annotated[str, StringConstraints(max_length=200, pattern=PLAIN)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
NewPassword = Annotated[str, Field(min_length=12, max_length=1024)]
Code = Annotated[str, Field(min_length=1, max_length=64)]
ScopeCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40, pattern=PLAIN)
]


class LoginIn(StrictModel):
    username: Annotated[str, Field(min_length=1, max_length=200)]
    password: Password


class LoginOut(BaseModel):
    mfa_required: bool = Field(description="Send a TOTP or recovery code to POST /auth/mfa next.")
    enrolment_required: bool = Field(
        description="No authenticator yet: POST /auth/totp/enrol, then /auth/totp/confirm."
    )
    csrf_token: str = Field(description="Send as X-CSRF-Token on unsafe requests.")


class CodeIn(StrictModel):
    code: Code


class MfaOut(BaseModel):
    mfa_verified: bool


class EnrolOut(BaseModel):
    secret: str = Field(description="Base32 TOTP secret, for typing into an app by hand.")
    uri: str = Field(description="otpauth:// URI (issuer Watchfloor).")
    qr_svg: str = Field(description="The URI as an inline SVG QR code.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Ten one-time codes; shown only this once.")


class GrantIn(StrictModel):
    role: Role
    scope: ScopeKind
    code: ScopeCode | None = Field(
        default=None, description="Region or facility code; leave out for scope 'org'."
    )

    @model_validator(mode="after")
    def _code_matches_scope(self) -> GrantIn:
        if self.scope is ScopeKind.ORG and self.code is not None:
            raise ValueError("scope 'org' takes no code")
        if self.scope is not ScopeKind.ORG and self.code is None:
            raise ValueError(f"scope '{self.scope.value}' needs the {self.scope.value}'s code")
        return self


class GrantOut(BaseModel):
    id: int
    role: str
    scope: str
    code: str | None


class MeOut(BaseModel):
    kind: str = Field(description="'user' (session) or 'token'.")
    id: int
    username: str
    display_name: str
    mfa_verified: bool
    enrolment_required: bool
    grants: list[GrantOut]
    csrf_token: str | None


class UserCreate(StrictModel):
    username: Username
    password: NewPassword
    display_name: Plain200 = ""
    email: EmailStr | None = None
    grants: Annotated[list[GrantIn], Field(max_length=50)] = []


class UserPatch(StrictModel):
    display_name: Plain200 | None = None
    email: EmailStr | None = None
    is_active: bool | None = None
    unlock: bool = False


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    email: str
    is_active: bool
    mfa_enrolled: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime
    grants: list[GrantOut]


class UserList(BaseModel):
    items: list[UserOut]
    total: int


class TokenCreate(StrictModel):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=PLAIN),
    ]
    role: Role
    scope: ScopeKind
    code: ScopeCode | None = None

    @model_validator(mode="after")
    def _code_matches_scope(self) -> TokenCreate:
        if self.scope is ScopeKind.ORG and self.code is not None:
            raise ValueError("scope 'org' takes no code")
        if self.scope is not ScopeKind.ORG and self.code is None:
            raise ValueError(f"scope '{self.scope.value}' needs the {self.scope.value}'s code")
        return self


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to recognise it by.")
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    grants: list[GrantOut]


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown only this once; store it now.")


class TokenList(BaseModel):
    items: list[TokenOut]
    total: int
