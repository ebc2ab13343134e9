"""Store settings: secrets and knobs from the environment, stores from the TOML file.

    [[stores]]
    code = "silverlake"                    # the POS's store id (webhooks and CSV `store` columns)
    name = "MOTA Silverlake"
    timezone = "America/Los_Angeles"
    address = "3825 W Sunset Blvd, Los Angeles, CA 90026"
    phone = "+13235550100"
    hours = "Mon-Sun 9am-10pm"
    staff_destination = "slack:C0STAFF"    # where HUMAN requests go (default: the console)
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr, field_validator

from bot.config_file import StrictModel
from bot.settings import HuddleSettings
from coaching.loyalty import LoyaltyRules


class StoreSettings(HuddleSettings):
    store_name: str | None = Field(None, description="the name in HELP and STOP answers (default: the first store)")
    store_contact: str | None = Field(None, description="added to the HELP answer, e.g. a phone number or hours")
    pos_webhook_secret: SecretStr | None = Field(None, description="HMAC secret of POST /webhooks/pos")
    pos_webhook_window: float = Field(300.0, gt=0, description="seconds a webhook timestamp may differ from now")
    points_per_dollar: Decimal = Field(Decimal("1"), ge=0)
    budtender_points_multiplier: Decimal = Field(Decimal("10"), ge=0)
    store_staff_destination: str | None = Field(
        None, description="CHANNEL:ID for customer handoffs, e.g. slack:C0STAFF (default: console:staff)"
    )
    concierge_ai: bool = Field(True, description="let the model answer free text when OPENAI_API_KEY is set")
    concierge_ai_timeout: float = Field(8.0, gt=0, description="seconds to wait for the model before the rules answer")

    @property
    def loyalty(self) -> LoyaltyRules:
        return LoyaltyRules(self.points_per_dollar, self.budtender_points_multiplier)


class StoreConfig(StrictModel):
    code: str = Field(min_length=1, max_length=64)
    name: str
    timezone: str = "America/Los_Angeles"
    address: str | None = None
    phone: str | None = None
    hours: str | None = None
    website: str | None = None
    staff_destination: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(value)
        return value


DEMO_STORE = StoreConfig(
    code="silverlake",
    name="MOTA Silverlake",
    timezone="America/Los_Angeles",
    address="3825 W Sunset Blvd, Los Angeles, CA 90026",
    phone="+13235550142",
    hours="Open daily 9am-10pm",
)
"""The store used when the config names none (the demo and a first run)."""
