"""Evidence for enforcement: confirmed counterfeits grouped into seller rings.

Listings whose latest reviewer label is ``counterfeit`` are linked (union-find) when

* they come from the same seller (no link is listed: the case's ``sellers`` says it),
* any of their images are byte-identical (same sha256) or perceptually near-identical (Hamming
  distance <= ``LINK_DISTANCE`` between any of their stored 64-bit view hashes), or
* their normalised title + description are identical and at least ``MIN_TEXT_CHARS`` long (so
  that "nike shoes" alone does not tie unrelated sellers together).

Each connected group is one case. At most ``cases_max_listings`` confirmed listings (the most
recently confirmed) are considered per request; the report says when more exist.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.deps import Principal
from api.errors import NotFound
from api.ingest.schemas import ReasonOut
from api.pagination import Page, PageInfo
from api.review.schemas import Case, CaseDecision, CaseImage, CaseLink, CaseListing, CaseReport
from api.review.service import money
from detector.index import HammingIndex
from detector.text import normalize
from store.brands import BrandRepository
from store.review import ItemRecord, ReviewRepository

LINK_DISTANCE = 6
MIN_TEXT_CHARS = 20
_NON_WORD = re.compile(r"[\W_]+")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class _Links:
    #: (listing a, listing b) -> the strongest evidence found, a < b.
    image: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    text: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)


def text_key(title: str, description: str | None) -> str | None:
    """Normalised title + description (obfuscations undone, punctuation dropped), or None
    when too short to tie sellers together."""
    folded = normalize(f"{title}\n{description or ''}").text
    words = _NON_WORD.sub(" ", folded).strip()
    return words if len(words) >= MIN_TEXT_CHARS else None


def _hash_value(value: Any) -> int | None:
    try:
        out = int(str(value), 16)
    except ValueError:
        return None
    return out if 0 <= out < 2**64 else None


def _image_links(records: list[ItemRecord], links: _Links) -> None:
    sellers = [r.version.seller_id for r in records]
    by_sha: dict[str, list[tuple[int, int]]] = defaultdict(list)
    hashes: list[int] = []
    owners: list[tuple[int, int, str]] = []  # (listing row, image index, view)
    for row, rec in enumerate(records):
        for entry in rec.version.images or []:
            if entry.get("error"):
                continue
            image = int(entry.get("index", 0))
            if entry.get("sha256"):
                by_sha[str(entry["sha256"])].append((row, image))
            for view, hex_value in (entry.get("hashes") or {}).items():
                value = _hash_value(hex_value)
                if value is not None:
                    hashes.append(value)
                    owners.append((row, image, str(view)))

    def link(a: tuple[int, int], b: tuple[int, int], evidence: dict[str, Any]) -> None:
        if sellers[a[0]] == sellers[b[0]]:
            return
        (ra, ia), (rb, ib) = sorted((a, b))
        key = (ra, rb)
        known = links.image.get(key)
        if known is None or evidence["distance"] < known["distance"]:
            links.image[key] = {
                "image_a": ia,
                "image_b": ib,
                "sha256_a": _sha(records[ra], ia),
                "sha256_b": _sha(records[rb], ib),
                **evidence,
            }

    for sha, where in by_sha.items():
        for i, first in enumerate(where):
            for second in where[i + 1 :]:
                link(first, second, {"match": "identical_sha256", "distance": 0, "sha256": sha})
    if not hashes:
        return
    search = HammingIndex()
    values = np.asarray(hashes, dtype=np.uint64)
    search.add(values, np.arange(len(hashes), dtype=np.int32), np.zeros(len(hashes), np.uint8))
    search.compact()
    for qi, found in enumerate(search.search(values, LINK_DISTANCE)):
        for other, dist in zip(found.ref_keys.tolist(), found.distances.tolist(), strict=True):
            # Each pair once, with the lower listing row first.
            lo, hi = sorted((owners[qi] + (hashes[qi],), owners[other] + (hashes[other],)))
            if other <= qi or lo[0] == hi[0]:
                continue
            link(
                (lo[0], lo[1]),
                (hi[0], hi[1]),
                {
                    "match": "perceptual_hash",
                    "distance": int(dist),
                    "views": [lo[2], hi[2]],
                    "hashes": [f"{lo[3]:016x}", f"{hi[3]:016x}"],
                },
            )


def _sha(rec: ItemRecord, index: int) -> str | None:
    for entry in rec.version.images or []:
        if entry.get("index") == index:
            sha = entry.get("sha256")
            return str(sha) if sha else None
    return None


def _text_links(records: list[ItemRecord], links: _Links) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for row, rec in enumerate(records):
        key = text_key(rec.version.title, rec.version.description)
        if key is not None:
            groups[key].append(row)
    for key, rows in groups.items():
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if records[a].version.seller_id != records[b].version.seller_id:
                    links.text[(a, b)] = {
                        "match": "identical_normalised_text",
                        "text_sha256": hashlib.sha256(key.encode()).hexdigest(),
                        "chars": len(key),
                    }


def _listing_out(rec: ItemRecord, decisions: list[CaseDecision]) -> CaseListing:
    return CaseListing(
        listing_id=rec.listing.external_id,
        seller_id=rec.version.seller_id,
        brand_id=rec.item.brand_id,
        version_id=rec.version.id,
        title=rec.version.title,
        description=rec.version.description,
        price=money(rec.version.price_amount, rec.version.price_currency),
        images=[
            CaseImage(
                index=int(e.get("index", 0)),
                sha256=e.get("sha256"),
                hashes=dict(e.get("hashes") or {}),
            )
            for e in rec.version.images or []
        ],
        score=rec.verdict.score,
        decision=rec.verdict.decision,
        verdict_id=rec.verdict.id,
        reasons=[ReasonOut(**r) for r in rec.verdict.reasons],
        scored_at=rec.verdict.scored_at,
        confirmed_at=rec.item.decided_at,
        decisions=decisions,
    )


def link_cases(records: list[ItemRecord], decisions: dict[str, list[CaseDecision]]) -> list[Case]:
    """Group confirmed listings into cases (largest first); links name the lower id first."""
    records = sorted(records, key=lambda r: r.listing.external_id)
    links = _Links()
    _image_links(records, links)
    _text_links(records, links)
    uf = _UnionFind(len(records))
    first_of_seller: dict[str, int] = {}
    for row, rec in enumerate(records):
        seller = rec.version.seller_id
        if seller in first_of_seller:
            uf.union(first_of_seller[seller], row)
        else:
            first_of_seller[seller] = row
    for a, b in [*links.image, *links.text]:
        uf.union(a, b)
    members: dict[int, list[int]] = defaultdict(list)
    for row in range(len(records)):
        members[uf.find(row)].append(row)
    cases: list[Case] = []
    for rows in members.values():
        ids = sorted(records[r].listing.external_id for r in rows)
        case_id = "case-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]
        in_case = set(rows)
        case_links = [
            CaseLink(
                a=records[a].listing.external_id,
                b=records[b].listing.external_id,
                kind=kind,  # type: ignore[arg-type]
                evidence={
                    "sellers": [records[a].version.seller_id, records[b].version.seller_id],
                    **evidence,
                },
            )
            for kind, found in (("image", links.image), ("text", links.text))
            for (a, b), evidence in sorted(found.items())
            if a in in_case
        ]
        cases.append(
            Case(
                case_id=case_id,
                sellers=sorted({records[r].version.seller_id for r in rows}),
                listings=[
                    _listing_out(records[r], decisions.get(records[r].item.id, [])) for r in rows
                ],
                links=case_links,
            )
        )
    cases.sort(key=lambda c: (-len(c.listings), c.case_id))
    return cases


@dataclass(frozen=True)
class CaseSet:
    cases: list[Case]
    considered: int
    cap: int
    truncated: bool


def _scope(session: Session, principal: Principal, brand_id: str | None) -> str | None:
    """The brand whose cases the caller may see (None: every brand, admins only)."""
    if brand_id is None and not principal.is_admin:
        brand_id = principal.brand_id
        if brand_id is None:  # pragma: no cover (brand keys always carry a brand)
            raise NotFound("this key is not bound to a brand")
    if brand_id is not None:
        principal.require_brand(brand_id)
        if BrandRepository(session).get(brand_id) is None:
            raise NotFound(f"brand {brand_id} not found")
    return brand_id


def build_cases(session: Session, principal: Principal, brand_id: str | None, cap: int) -> CaseSet:
    """Every case among the (at most ``cap``) most recently confirmed counterfeits."""
    scope = _scope(session, principal, brand_id)
    repo = ReviewRepository(session)
    records = repo.confirmed(scope, limit=cap + 1)
    truncated = len(records) > cap
    records = records[:cap]
    rows = repo.decisions([r.item.id for r in records])
    decisions = {
        item_id: [
            CaseDecision(
                label=d.label,  # type: ignore[arg-type]
                previous_label=d.previous_label,  # type: ignore[arg-type]
                reviewer_key_id=d.reviewer_key_id,
                note=d.note,
                reason_codes=list(d.reason_codes or []),
                created_at=d.created_at,
            )
            for d in found
        ]
        for item_id, found in rows.items()
    }
    return CaseSet(link_cases(records, decisions), len(records), cap, truncated)


def case_report(found: CaseSet, page: Page) -> CaseReport:
    chunk = found.cases[page.offset : page.offset + page.limit]
    return CaseReport(
        cases=chunk,
        listings_considered=found.considered,
        listings_cap=found.cap,
        truncated=found.truncated,
        link_distance=LINK_DISTANCE,
        **PageInfo.of(page, len(found.cases), len(chunk)).model_dump(),
    )


CSV_COLUMNS = (
    "case_id",
    "case_sellers",
    "listing_id",
    "seller_id",
    "brand_id",
    "title",
    "description",
    "price_amount",
    "price_currency",
    "score",
    "decision",
    "verdict_id",
    "scored_at",
    "confirmed_at",
    "latest_label",
    "reviewers",
    "decision_count",
    "image_sha256",
    "image_hashes",
)


def _cell(value: Any) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with a '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def cases_csv(found: CaseSet) -> str:
    """One row per listing with its case id (every considered case, no paging)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for case in found.cases:
        for item in case.listings:
            latest = item.decisions[-1] if item.decisions else None
            writer.writerow(
                [
                    _cell(v)
                    for v in (
                        case.case_id,
                        ";".join(case.sellers),
                        item.listing_id,
                        item.seller_id,
                        item.brand_id,
                        item.title,
                        item.description,
                        item.price.amount if item.price else None,
                        item.price.currency if item.price else None,
                        round(item.score, 4),
                        item.decision,
                        item.verdict_id,
                        item.scored_at.isoformat(),
                        item.confirmed_at.isoformat() if item.confirmed_at else None,
                        latest.label if latest else None,
                        ";".join(sorted({d.reviewer_key_id for d in item.decisions})),
                        len(item.decisions),
                        ";".join(i.sha256 for i in item.images if i.sha256),
                        ";".join(
                            f"{i.index}:{view}:{h}"
                            for i in item.images
                            for view, h in sorted(i.hashes.items())
                        ),
                    )
                ]
            )
    return out.getvalue()
