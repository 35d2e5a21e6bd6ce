"""S3's ListObjectsV2, answered from moto's S3 model with the response written directly.

moto 5.2 writes every listed object through its generic serializer, which walks botocore's model for each
field: about 1 ms an object, more on a busy machine. The Kafka stand-in (Tansu on the emulator's S3) lists
a partition's whole `records/` prefix on every fetch and gives up when that takes longer than the fetch's
max wait (Tansu's `dynostore` fetch deadline), answering with no records: once a partition held a few
hundred batches, every fetch timed out and the order consumers stalled for good. Here the same listing
costs microseconds an object, so a fetch reads a long log within its wait.

The listing is moto's own (`S3Backend.list_objects_v2`: prefix, delimiter, continuation token, start-after,
max-keys); only the response is written here, with the fields and order of S3's `ListBucketResult`. What
this does not cover (fetch-owner, an unsigned or virtual-hosted request, a bucket moto does not hold) goes
to moto unchanged, errors included.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote
from wsgiref.types import StartResponse, WSGIEnvironment
from xml.sax.saxutils import escape

from sim.aws import SIGV4_CREDENTIAL

if TYPE_CHECKING:
    from moto.s3.models import FakeKey

_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
#: the query parameters answered here; any other (fetch-owner, versions, ...) is moto's to answer
_ANSWERED = frozenset(
    {"list-type", "prefix", "delimiter", "continuation-token", "start-after", "max-keys", "encoding-type"}
)
_BUCKET_PATH = re.compile(r"^/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/?$")
#: each listed key's `<Contents>` (keys unencoded), for as long as moto holds the key
_WRITTEN: weakref.WeakKeyDictionary[FakeKey, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ListingRequest:
    """A signed path-style ListObjectsV2 with only the parameters answered here."""

    bucket: str
    account: str
    region: str
    query: dict[str, str]


def listing_request(environ: WSGIEnvironment) -> ListingRequest | None:
    """The ListObjectsV2 `environ` asks for, when it is one answered here; else None."""
    if environ.get("REQUEST_METHOD") != "GET":
        return None
    match = _BUCKET_PATH.match(str(environ.get("PATH_INFO") or ""))
    credential = SIGV4_CREDENTIAL.search(str(environ.get("HTTP_AUTHORIZATION") or ""))
    if match is None or credential is None or credential.group(3) != "s3":
        return None
    query = parse_qs(str(environ.get("QUERY_STRING") or ""), keep_blank_values=True)
    if query.get("list-type") != ["2"] or not set(query) <= _ANSWERED:
        return None
    first = {name: values[0] for name, values in query.items()}
    return ListingRequest(match.group(1), credential.group(1), credential.group(2), first)


def list_objects_v2(request: ListingRequest, start_response: StartResponse) -> Iterable[bytes] | None:
    """Answer the listing; None when moto should (no such bucket, a bad parameter)."""
    from moto import settings
    from moto.iam.models import get_account_id_from
    from moto.s3.models import FakeKey, s3_backends
    from moto.utilities.utils import get_partition

    backend = s3_backends[get_account_id_from(request.account)][get_partition(request.region)]
    bucket = backend.buckets.get(request.bucket)
    query = request.query
    max_keys = query.get("max-keys", str(settings.get_s3_default_max_keys()))
    token = query.get("continuation-token")
    encoding = query.get("encoding-type")
    if bucket is None or not max_keys.isdigit() or token == "" or encoding not in (None, "url"):
        return None
    # with encoding-type=url, S3 (and moto) URL-encode the keys, the prefix and the common prefixes
    encoded: Callable[[str], str] = quote if encoding else str
    prefix, delimiter, start_after = query.get("prefix"), query.get("delimiter"), query.get("start-after")
    listed, truncated, next_token = backend.list_objects_v2(
        bucket=bucket,
        prefix=prefix,
        delimiter=delimiter,
        continuation_token=token,
        start_after=start_after,
        max_keys=int(max_keys),
    )
    keys = [key for key in listed if isinstance(key, FakeKey)]
    folders = [encoded(folder) for folder in listed if not isinstance(folder, FakeKey)]
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_NAMESPACE}">',
        _element("Name", bucket.name),
        _element("Prefix", encoded(prefix or "")),
        _element("MaxKeys", max_keys),
        _element("KeyCount", str(len(keys) + len(folders))),
        _element("IsTruncated", "true" if truncated else "false"),
    ]
    parts += (_contents(key) if encoding is None else _contents_of(key, encoded) for key in keys)
    if delimiter:
        parts.append(_element("Delimiter", delimiter))
        parts += (f"<CommonPrefixes>{_element('Prefix', folder)}</CommonPrefixes>" for folder in folders)
    if encoding:
        parts.append(_element("EncodingType", encoding))
    if next_token:
        parts.append(_element("NextContinuationToken", next_token))
    if start_after and not token:
        parts.append(_element("StartAfter", start_after))
    parts.append("</ListBucketResult>")
    body = "".join(parts).encode()
    start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


def _contents(key: FakeKey) -> str:
    """The key's `<Contents>`, written once: moto replaces a key's object when it is written again, and
    Tansu lists the same batches on every fetch."""
    written = _WRITTEN.get(key)
    if written is None:
        written = _WRITTEN[key] = _contents_of(key, str)
    return written


def _contents_of(key: FakeKey, encoded: Callable[[str], str]) -> str:
    fields = [
        _element("Key", encoded(key.name)),
        _element("LastModified", key.last_modified_ISO8601),
        _element("ETag", key.etag),
        _element("Size", str(key.size)),
        _element("StorageClass", key.storage_class or "STANDARD"),
    ]
    if key.checksum_algorithm:
        fields.append(_element("ChecksumAlgorithm", key.checksum_algorithm))
    return f"<Contents>{''.join(fields)}</Contents>"


def _element(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"
