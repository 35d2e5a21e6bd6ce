"""recommendation's query; its response is product-catalog's product list."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

MAX_PRODUCT_IDS = 100


class RecommendationQuery(BaseModel):
    product_ids: str | None = Field(
        default=None,
        max_length=2000,
        pattern=r"^[A-Za-z0-9_, -]*$",
        description="Comma-separated ids of the products to leave out, e.g. those in view or in the cart.",
        examples=["OLJCESPC7Z,66VCHSJNUP"],
    )

    @field_validator("product_ids")
    @classmethod
    def _not_too_many(cls, value: str | None) -> str | None:
        if value is not None and value.count(",") >= MAX_PRODUCT_IDS:
            raise ValueError(f"at most {MAX_PRODUCT_IDS} product ids")
        return value

    def excluded(self) -> frozenset[str]:
        """The given ids; blanks and spaces around the commas are ignored."""
        if not self.product_ids:
            return frozenset()
        return frozenset(part.strip() for part in self.product_ids.split(",") if part.strip())
