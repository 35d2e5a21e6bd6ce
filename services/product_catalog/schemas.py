"""product-catalog's search query; the Product shapes it serves are in services.common.contracts."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints


class SearchQuery(BaseModel):
    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
