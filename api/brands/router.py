"""Brands and their reference catalogs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile, status

from api.brands import service
from api.brands.schemas import (
    BrandCreate,
    BrandList,
    BrandOut,
    BrandPatch,
    ReferenceList,
    ReferenceOut,
    UploadResult,
)
from api.deps import AdminKey, BrandKey, ContextDep, Principal, SessionDep, require_role
from api.errors import (
    AUTH_ERRORS,
    Conflict,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    error_responses,
)
from api.pagination import PageDep, PageInfo

router = APIRouter(prefix="/v1/brands", tags=["brands"])

CatalogReader = Annotated[Principal, Depends(require_role("brand", "reviewer"))]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=BrandOut,
    responses=error_responses(*AUTH_ERRORS, Conflict, Unprocessable),
)
def create_brand(body: BrandCreate, session: SessionDep, admin: AdminKey) -> BrandOut:
    """Register a brand (admin)."""
    return service.create_brand(session, admin, body)


@router.get("", response_model=BrandList, responses=error_responses(*AUTH_ERRORS))
def list_brands(session: SessionDep, principal: BrandKey, page: PageDep) -> BrandList:
    """List brands: all of them for an admin, its own for a brand key."""
    brands, total = service.list_brands(session, principal, page.limit, page.offset)
    return BrandList(brands=brands, **PageInfo.of(page, total, len(brands)).model_dump())


@router.get(
    "/{brand_id}", response_model=BrandOut, responses=error_responses(*AUTH_ERRORS, NotFound)
)
def get_brand(brand_id: str, session: SessionDep, principal: BrandKey) -> BrandOut:
    """One brand."""
    return service.brand_out(service.get_brand(session, principal, brand_id))


@router.patch(
    "/{brand_id}",
    response_model=BrandOut,
    responses=error_responses(*AUTH_ERRORS, NotFound, Conflict, Unprocessable),
)
def update_brand(
    brand_id: str, body: BrandPatch, session: SessionDep, ctx: ContextDep, principal: BrandKey
) -> BrandOut:
    """Change a brand's aliases, sellers or reference price (name and thresholds: admin)."""
    return service.update_brand(session, ctx, principal, brand_id, body)


@router.delete(
    "/{brand_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def delete_brand(brand_id: str, session: SessionDep, ctx: ContextDep, admin: AdminKey) -> Response:
    """Delete a brand with its references and brand keys (admin)."""
    service.delete_brand(session, ctx, admin, brand_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{brand_id}/references",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    responses=error_responses(
        *AUTH_ERRORS,
        NotFound,
        PayloadTooLarge,
        Unprocessable,
        ServiceUnavailable,
        InsufficientStorage,
    ),
)
def upload_references(
    brand_id: str,
    session: SessionDep,
    ctx: ContextDep,
    principal: BrandKey,
    files: Annotated[list[UploadFile], File(description="one or more image files", min_length=1)],
    product: Annotated[str | None, Form(max_length=200)] = None,
    sku: Annotated[str | None, Form(max_length=100)] = None,
) -> UploadResult:
    """Upload reference images. Each file is validated and hashed; bad files are listed in
    ``errors`` and the good ones are kept. The same bytes uploaded again return the existing
    reference (``status: "existing"``)."""
    incoming = [service.IncomingFile(f.filename, f.content_type, f.file) for f in files]
    result = service.upload_references(session, ctx, principal, brand_id, incoming, product, sku)
    for error in result.errors:
        ctx.metrics.image_failed("upload", error.error)
    if not result.references:
        raise Unprocessable(
            "no file in the upload could be used: "
            + "; ".join(f"{e.filename or e.index}: {e.detail}" for e in result.errors),
            code="no_valid_images",
            extra={"errors": [e.model_dump() for e in result.errors]},
        )
    return result


@router.get(
    "/{brand_id}/references",
    response_model=ReferenceList,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def list_references(
    brand_id: str, session: SessionDep, principal: BrandKey, page: PageDep
) -> ReferenceList:
    """List a brand's reference images, oldest first."""
    refs, total = service.list_references(session, principal, brand_id, page.limit, page.offset)
    return ReferenceList(references=refs, **PageInfo.of(page, total, len(refs)).model_dump())


@router.get(
    "/{brand_id}/references/{reference_id}",
    response_model=ReferenceOut,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def get_reference(
    brand_id: str, reference_id: str, session: SessionDep, principal: BrandKey
) -> ReferenceOut:
    """One reference image's metadata."""
    return service.get_reference(session, principal, brand_id, reference_id)


@router.get(
    "/{brand_id}/references/{reference_id}/image",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "the original bytes"},
        **error_responses(*AUTH_ERRORS, NotFound, ServiceUnavailable),
    },
)
def reference_image(
    brand_id: str, reference_id: str, session: SessionDep, ctx: ContextDep, principal: CatalogReader
) -> Response:
    """The original bytes of a reference image (brand, admin, reviewer)."""
    data, content_type = service.reference_image(session, ctx, principal, brand_id, reference_id)
    return Response(
        data,
        media_type=content_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )


@router.delete(
    "/{brand_id}/references/{reference_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*AUTH_ERRORS, NotFound),
)
def delete_reference(
    brand_id: str, reference_id: str, session: SessionDep, ctx: ContextDep, principal: BrandKey
) -> Response:
    """Delete a reference image; it stops matching within seconds in every worker."""
    service.delete_reference(session, ctx, principal, brand_id, reference_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
