"""`[salesforce]`: the org's address, authentication and the Blackthorn object and field names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from regsync.settings.common import Section, check_ca_file


class SalesforceObjects(Section):
    """API names of the Blackthorn objects regsync reads."""

    registration: str = "conference360__Event_Registration_Submission__c"
    event: str = "conference360__Event__c"
    session: str = "conference360__Session__c"
    attendee: str = "conference360__Attendee__c"
    session_attendee: str = "conference360__Session_Attendee__c"


class RegistrationFields(Section):
    """Field API names on the Event Registration Submission (not public: org-specific)."""

    status: str = "conference360__Status__c"
    event: str = "conference360__Event__c"
    attendee_json: str = "conference360__Attendee_JSON__c"
    error_message: str = "conference360__Error_Message__c"
    amount: str = "conference360__Amount__c"
    # The org's own integration fields: where the Checkfront booking session id and booking code live.
    # checkfront_session = "" means: read `sessionId` from the Attendee JSON payload.
    checkfront_session: str = ""
    booking_code: str = "Checkfront_Booking_Code__c"


class SessionFields(Section):
    """Field API names on Salesforce Sessions and Session Attendees."""

    event: str = "conference360__Event__c"
    # A field on conference360__Session__c holding the Checkfront item id it sells ("" = use mapping only).
    checkfront_item: str = "Checkfront_Item_Id__c"
    attendee_session: str = "conference360__Session__c"
    attendee_attendee: str = "conference360__Attendee__c"
    attendee_status: str = "conference360__Registration_Status__c"


class SalesforceSettings(Section):
    """How to reach and authenticate to the Salesforce org."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auth: Literal["password", "client_credentials", "jwt", "session"] = "password"
    login_url: str = "https://login.salesforce.com"
    instance_url: str = ""  # required for auth = "session"; discovered from the token otherwise
    api_version: str = "60.0"
    username: str = ""
    consumer_key: str = ""
    ca_file: Path | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    # Records per query page, sent as `Sforce-Query-Options: batchSize=N` (Salesforce takes
    # 200-2,000 and treats the number as a request, not a promise). Unset: Salesforce's 2,000.
    # Smaller pages hold less in memory per page and in flight per slice, at more calls.
    query_batch_size: int | None = Field(default=None, ge=200, le=2000)
    objects: SalesforceObjects = SalesforceObjects()
    registration_fields: RegistrationFields = RegistrationFields()
    session_fields: SessionFields = SessionFields()
    # Secrets: environment only.
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    private_key_file: SecretStr | None = None
    session_id: SecretStr | None = None

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        major, _, minor = value.partition(".")
        if not (major.isdigit() and minor.isdigit()):
            raise ValueError("expected a version such as '60.0'")
        return value

    @field_validator("login_url", "instance_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value and not value.startswith("https://"):
            raise ValueError("expected an https:// URL (Salesforce is https-only)")
        return value.rstrip("/")

    _ca_file = field_validator("ca_file")(check_ca_file)
