"""Store settings: secrets and knobs from the environment, stores from the TOML file.

    [[stores]]
    code = "silverlake"                    # the POS's store id (webhooks and CSV `store` columns)
    name = "MOTA Silverlake"
    timezone = "America/Los_Angeles"       # default: HUDDLE_DEFAULT_TIMEZONE
    country = "US"                         # national phone numbers are read here (default: the
                                           # country of `phone`, else HUDDLE_DEFAULT_REGION)
    address = "3825 W Sunset Blvd, Los Angeles, CA 90026"
    phone = "+13235550100"
    hours = "Mon-Sun 9am-10pm"
    staff_destination = "slack:C0STAFF"    # where HUMAN requests go (default: the console)
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr, field_validator

from bot.config_file import StrictModel
from bot.phones import check_region, region_of
from bot.settings import HuddleSettings, check_timezone
from coaching.loyalty import LoyaltyRules, parse_tiers


class StoreSettings(HuddleSettings):
    store_name: str | None = Field(None, description="the name in HELP and STOP answers (default: the first store)")
    store_contact: str | None = Field(None, description="added to the HELP answer, e.g. a phone number or hours")
    pos_webhook_secret: SecretStr | None = Field(None, description="HMAC secret of POST /webhooks/pos")
    pos_webhook_previous_secret: SecretStr | None = Field(
        None, description="the secret being rotated out: accepted as well until the POS signs with the new one"
    )
    pos_webhook_window: float = Field(300.0, gt=0, description="seconds a webhook timestamp may differ from now")
    pos_webhook_legacy_signature: bool = Field(
        False, description="also accept the old body-only `sha256=` signature (replayable; for a POS not yet updated)"
    )
    points_per_dollar: Decimal = Field(Decimal("1"), ge=0)
    budtender_points_multiplier: Decimal = Field(Decimal("10"), ge=0)
    loyalty_tiers: str = Field("silver:250,gold:500,vip:1000",
                               description="points tiers NAME:POINTS, lowest first (reaching one: points.tier_up)")
    store_staff_destination: str | None = Field(
        None, description="CHANNEL:ID for customer handoffs, e.g. slack:C0STAFF (default: console:staff)"
    )
    store_staff_reply_wait: float = Field(
        20.0, gt=0, description="seconds `reply N` waits to tell staff whether their text went out"
    )
    concierge_ai: bool = Field(True, description="let the model answer free text when OPENAI_API_KEY is set")
    concierge_ai_timeout: float = Field(8.0, gt=0, description="seconds to wait for the model before the rules answer")

    @field_validator("loyalty_tiers")
    @classmethod
    def _tiers(cls, value: str) -> str:
        parse_tiers(value)
        return value

    def pos_secrets(self) -> list[str]:
        """The secrets a webhook may be signed with (current first); empty values count as unset."""
        found = [s.get_secret_value() for s in (self.pos_webhook_secret, self.pos_webhook_previous_secret) if s]
        return [s for s in found if s.strip()]

    @property
    def loyalty(self) -> LoyaltyRules:
        return LoyaltyRules(self.points_per_dollar, self.budtender_points_multiplier, parse_tiers(self.loyalty_tiers))


class StoreConfig(StrictModel):
    code: str = Field(min_length=1, max_length=64)
    name: str
    timezone: str | None = None
    """IANA zone; unset: HUDDLE_DEFAULT_TIMEZONE (filled in when the store plugin loads)."""
    country: str | None = None
    """ISO 3166 country whose national phone numbers customers and imports use."""
    address: str | None = None
    phone: str | None = None
    hours: str | None = None
    website: str | None = None
    staff_destination: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else check_region(value)

    def region(self) -> str | None:
        """Where this store's national numbers belong: `country`, else the country of its phone."""
        if self.country:
            return self.country
        if self.phone and self.phone.strip().startswith("+"):
            return region_of(self.phone)
        return None


DEMO_STORE = StoreConfig(
    code="silverlake",
    name="MOTA Silverlake",
    timezone="America/Los_Angeles",
    address="3825 W Sunset Blvd, Los Angeles, CA 90026",
    phone="+13235550142",
    hours="Open daily 9am-10pm",
)
"""The store of the demo, used when the config names none and HUDDLE_DEMO is on (the default)."""

UNSET_STORE_CODE = "store"
"""The code of the stand-in store of a real deployment without `[[stores]]`: name only, no details."""
