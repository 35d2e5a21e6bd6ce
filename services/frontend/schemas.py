"""frontend's own query; the bodies it exchanges with its peers are in services.common.contracts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints


class ProductQuery(BaseModel):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = Field(
        default=None, description="Search the name, description and categories", examples=["telescope"]
    )
