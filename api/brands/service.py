"""Brand and reference-catalog orchestration: validation, hashing, blobs, audit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session

from api.brands.schemas import (
    BrandCreate,
    BrandOut,
    BrandPatch,
    HashInfo,
    Money,
    ReferenceOut,
    UploadError,
    UploadResult,
)
from api.catalog import after_commit
from api.context import AppContext
from api.deps import Principal
from api.errors import (
    Conflict,
    InsufficientStorage,
    NotFound,
    ServiceUnavailable,
    Unprocessable,
)
from detector import images
from store.audit import AuditRepository
from store.blobs import BlobStoreError, BlobStoreFull, sha256_hex
from store.brands import BrandNameTaken, BrandRepository
from store.db import stage_blobs
from store.references import ReferenceRepository
from store.tables import Brand, Reference

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def brand_out(brand: Brand, reference_count: int | None = None) -> BrandOut:
    price = None
    if brand.reference_price_amount is not None and brand.reference_price_currency:
        price = Money(amount=brand.reference_price_amount, currency=brand.reference_price_currency)
    return BrandOut(
        id=brand.id,
        name=brand.name,
        aliases=list(brand.aliases or []),
        authorized_sellers=list(brand.authorized_sellers or []),
        reference_price=price,
        review_threshold=brand.review_threshold,
        block_threshold=brand.block_threshold,
        match_distance=brand.match_distance,
        reference_count=reference_count,
        created_at=brand.created_at,
        updated_at=brand.updated_at,
    )


def reference_out(
    ref: Reference, status: str | None = None, n_hashes: int | None = None
) -> ReferenceOut:
    return ReferenceOut(
        id=ref.id,
        brand_id=ref.brand_id,
        filename=ref.filename,
        content_type=ref.content_type,
        product=ref.product,
        sku=ref.sku,
        sha256=ref.sha256,
        format=ref.format,
        width=ref.width,
        height=ref.height,
        byte_size=ref.byte_size,
        quality=round(ref.quality, 2),
        created_at=ref.created_at,
        status=status,  # type: ignore[arg-type]
        hashes=(
            HashInfo(algorithm=images.ALGORITHM, version=images.ALGORITHM_VERSION, count=n_hashes)
            if n_hashes is not None
            else None
        ),
        image_url=f"/v1/brands/{ref.brand_id}/references/{ref.id}/image",
    )


def _check_thresholds(review: float | None, block: float | None) -> None:
    if review is not None and block is not None and review > block:
        raise Unprocessable(
            f"review_threshold ({review}) must not exceed block_threshold ({block})",
            code="invalid_thresholds",
        )


def get_brand(session: Session, principal: Principal, brand_id: str) -> Brand:
    """The brand, if it exists and the caller may see it (else the same 404 either way)."""
    principal.require_brand(brand_id)
    brand = BrandRepository(session).get(brand_id)
    if brand is None:
        raise NotFound(f"brand {brand_id} not found")
    return brand


def create_brand(session: Session, actor: Principal, body: BrandCreate) -> BrandOut:
    _check_thresholds(body.review_threshold, body.block_threshold)
    brand = Brand(
        name=body.name,
        aliases=body.aliases,
        authorized_sellers=body.authorized_sellers,
        reference_price_amount=body.reference_price.amount if body.reference_price else None,
        reference_price_currency=body.reference_price.currency if body.reference_price else None,
        review_threshold=body.review_threshold,
        block_threshold=body.block_threshold,
        match_distance=body.match_distance,
    )
    try:
        BrandRepository(session).create(brand)
    except BrandNameTaken as exc:
        raise Conflict(str(exc), code="brand_exists") from exc
    AuditRepository(session).record(
        "brand.create",
        "brand",
        brand.id,
        actor_key_id=actor.key_id,
        brand_id=brand.id,
        detail={"name": brand.name},
    )
    return brand_out(brand, 0)


def list_brands(
    session: Session, principal: Principal, limit: int, offset: int
) -> tuple[list[BrandOut], int]:
    only = None if principal.is_admin else ([principal.brand_id] if principal.brand_id else [])
    rows, total = BrandRepository(session).page(limit=limit, offset=offset, only_ids=only)
    return [brand_out(b) for b in rows], total


def update_brand(
    session: Session, ctx: AppContext, actor: Principal, brand_id: str, body: BrandPatch
) -> BrandOut:
    brand = get_brand(session, actor, brand_id)
    fields = body.model_fields_set
    if not actor.is_admin and ({"name", "review_threshold", "block_threshold"} & fields):
        # Renaming and decision thresholds are the marketplace's call, not the brand's.
        raise Unprocessable(
            "only an admin may change a brand's name or decision thresholds",
            code="admin_only_field",
        )
    if "name" in fields:
        if body.name is None:
            raise Unprocessable("name cannot be null", code="invalid_name")
        try:
            BrandRepository(session).rename(brand, body.name)
        except BrandNameTaken as exc:
            raise Conflict(str(exc), code="brand_exists") from exc
    if "aliases" in fields:
        brand.aliases = list(dict.fromkeys(body.aliases or []))
    if "authorized_sellers" in fields:
        brand.authorized_sellers = list(dict.fromkeys(body.authorized_sellers or []))
    if "reference_price" in fields:
        price = body.reference_price
        brand.reference_price_amount = price.amount if price else None
        brand.reference_price_currency = price.currency if price else None
    for name in ("review_threshold", "block_threshold", "match_distance"):
        if name in fields:
            setattr(brand, name, getattr(body, name))
    _check_thresholds(brand.review_threshold, brand.block_threshold)
    session.flush()
    if "match_distance" in fields:  # the other workers read it at their next catalog refresh
        brand_id, distance = brand.id, brand.match_distance
        after_commit(session, lambda: ctx.catalog.distance_changed_locally(brand_id, distance))
    AuditRepository(session).record(
        "brand.update",
        "brand",
        brand.id,
        actor_key_id=actor.key_id,
        brand_id=brand.id,
        detail={"fields": sorted(fields)},
    )
    return brand_out(brand)


def delete_brand(session: Session, ctx: AppContext, actor: Principal, brand_id: str) -> None:
    brand = get_brand(session, actor, brand_id)
    removed = BrandRepository(session).delete(brand)  # and its keys
    after_commit(session, lambda: ctx.catalog.removed_locally(removed))
    after_commit(session, ctx.keys.clear)
    AuditRepository(session).record(
        "brand.delete",
        "brand",
        brand_id,
        actor_key_id=actor.key_id,
        brand_id=brand_id,
        detail={"name": brand.name, "references_removed": len(removed)},
    )


@dataclass(frozen=True)
class IncomingFile:
    filename: str | None
    content_type: str | None
    stream: BinaryIO


def _read_capped(stream: BinaryIO, cap: int) -> bytes | None:
    data = stream.read(cap + 1)
    return None if len(data) > cap else data


def upload_references(
    session: Session,
    ctx: AppContext,
    actor: Principal,
    brand_id: str,
    files: Sequence[IncomingFile],
    product: str | None,
    sku: str | None,
) -> UploadResult:
    """Validate, hash and store each file; bad files are reported one by one, good ones kept."""
    get_brand(session, actor, brand_id)
    settings = ctx.settings
    if not files:
        raise Unprocessable("no files: send one or more 'files' parts", code="no_files")
    if len(files) > settings.max_files_per_upload:
        raise Unprocessable(
            f"{len(files)} files in one request; the limit is {settings.max_files_per_upload}",
            code="too_many_files",
        )
    repo = ReferenceRepository(session)
    audit = AuditRepository(session)
    catalog_adds: list[tuple[str, str, str, list[tuple[str, int]]]] = []
    results: list[ReferenceOut] = []
    errors: list[UploadError] = []
    for index, incoming in enumerate(files):
        name = (incoming.filename or "")[:255] or None

        def fail(code: str, detail: str, index: int = index, name: str | None = name) -> None:
            errors.append(UploadError(index=index, filename=name, error=code, detail=detail))

        data = _read_capped(incoming.stream, settings.max_image_bytes)
        if data is None:
            fail(
                "file_too_large",
                f"the file is larger than the {settings.max_image_bytes:,}-byte limit",
            )
            continue
        digest = sha256_hex(data)
        existing = repo.find_by_sha(brand_id, digest)
        if existing is not None:
            results.append(reference_out(existing, "existing"))
            continue
        try:
            decoded = images.decode(data, ctx.image_limits, draft=False)
        except images.ImageRejected as exc:
            fail(exc.code, exc.reason)
            continue
        hashes = images.hash_reference(decoded)
        try:
            # Named for good when the request commits, removed if it does not (store.db).
            stage_blobs(session, [ctx.blobs.stage(data, digest=digest)])
        except BlobStoreFull as exc:
            raise InsufficientStorage(f"no room to store the image: {exc}") from exc
        except BlobStoreError as exc:
            raise ServiceUnavailable(
                f"image storage is unavailable: {exc}", code="blob_store_unavailable"
            ) from exc
        ref = Reference(
            brand_id=brand_id,
            sha256=digest,
            filename=name,
            content_type=CONTENT_TYPES.get(decoded.format),
            product=product,
            sku=sku,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            byte_size=len(data),
            quality=decoded.quality,
        )
        row, created = repo.add(
            ref,
            [(h.variant, h.value) for h in hashes],
            algorithm=images.ALGORITHM,
            algorithm_version=images.ALGORITHM_VERSION,
        )
        if created:
            catalog_adds.append((row.id, brand_id, digest, [(h.variant, h.value) for h in hashes]))
            audit.record(
                "reference.create",
                "reference",
                row.id,
                actor_key_id=actor.key_id,
                brand_id=brand_id,
                detail={"sha256": digest, "filename": name},
            )
        results.append(
            reference_out(
                row, "created" if created else "existing", len(hashes) if created else None
            )
        )
    if catalog_adds:
        catalog = ctx.catalog

        def _index_new() -> None:
            for entry in catalog_adds:
                catalog.added_locally(*entry)

        after_commit(session, _index_new)
    return UploadResult(references=results, errors=errors)


def list_references(
    session: Session, principal: Principal, brand_id: str, limit: int, offset: int
) -> tuple[list[ReferenceOut], int]:
    get_brand(session, principal, brand_id)
    rows, total = ReferenceRepository(session).page(brand_id, limit=limit, offset=offset)
    return [reference_out(r) for r in rows], total


def _get_reference(session: Session, principal: Principal, brand_id: str, ref_id: str) -> Reference:
    ref = ReferenceRepository(session).get(brand_id, ref_id)
    if ref is None:
        raise NotFound(f"reference {ref_id} not found in brand {brand_id}")
    return ref


def get_reference(
    session: Session, principal: Principal, brand_id: str, ref_id: str
) -> ReferenceOut:
    get_brand(session, principal, brand_id)
    return reference_out(_get_reference(session, principal, brand_id, ref_id))


def delete_reference(
    session: Session, ctx: AppContext, actor: Principal, brand_id: str, ref_id: str
) -> None:
    get_brand(session, actor, brand_id)
    ref = _get_reference(session, actor, brand_id, ref_id)
    ReferenceRepository(session).delete(ref)
    after_commit(session, lambda: ctx.catalog.removed_locally([ref_id]))
    AuditRepository(session).record(
        "reference.delete",
        "reference",
        ref_id,
        actor_key_id=actor.key_id,
        brand_id=brand_id,
        detail={"sha256": ref.sha256},
    )


def reference_image(
    session: Session, ctx: AppContext, principal: Principal, brand_id: str, ref_id: str
) -> tuple[bytes, str]:
    """The stored bytes of a reference (brand/admin for their brand; reviewers for any brand)."""
    if principal.role != "reviewer":
        principal.require_brand(brand_id)
    ref = _get_reference(session, principal, brand_id, ref_id)
    try:
        data = ctx.blobs.get(ref.sha256)
    except BlobStoreError as exc:
        raise ServiceUnavailable(str(exc), code="blob_store_unavailable") from exc
    if data is None:
        raise NotFound(
            f"the image bytes of reference {ref_id} are missing from the blob store",
            code="blob_missing",
        )
    return data, ref.content_type or "application/octet-stream"
