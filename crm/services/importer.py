"""CSV imports: customers, deals, products and transactions (purchases).

A file is imported whole or not at all: every row is validated first and the first bad row
stops the import with its line number; nothing is written. The file is read strictly (see
``_Table``): a malformed record is an error too, never a row that swallows the next. Rows
already in the store (same email, same external id, same deal, same purchase) are counted as
skipped, so importing a file twice changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any, TextIO

import sqlalchemy as sa
from sqlmodel import Session, col, select

from crm.config import LOST_STAGE, WON_STAGE, Settings
from crm.models import (
    Channel,
    ContactKind,
    ContactPoint,
    Customer,
    CustomerStatus,
    Deal,
    DealStatus,
    Direction,
    Interaction,
    User,
)
from crm.services import bulk
from crm.services.actor import Actor
from crm.services.customers import ADDRESS_FIELDS, attach_email, clean_address
from crm.services.errors import CRMError
from crm.services.keys import contact_digest, contact_digests
from crm.services.normalise import (
    clean_text,
    company_domain,
    name_key,
    normalise_currency,
    normalise_domain,
    normalise_email,
    normalise_phone,
    parse_money,
)

Progress = Callable[[int], None]

# Accepted spellings of each column, after lower-casing and turning spaces/dashes into "_".
_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": (
        "external_id",
        "customer_id",
        "customer_number",
        "cust_id",
        "id",
        "customer_no",
    ),
    "name": ("name", "full_name", "customer_name", "contact", "contact_name"),
    "email": ("email", "email_address", "e_mail", "mail"),
    "company": ("company", "company_name", "organisation", "organization", "account"),
    "phone": ("phone", "phone_number", "telephone", "tel", "mobile"),
    "domain": ("domain", "website", "web", "url"),
    "status": ("status",),
    "street": ("street", "address", "street_address", "address_line_1", "address_1", "address1"),
    "city": ("city", "town", "suburb", "locality"),
    "postcode": ("postcode", "postal_code", "zip", "zip_code", "zipcode", "post_code"),
    "country": ("country", "country_code"),
    "owner": ("owner", "owner_email", "rep", "account_owner"),
    "tags": ("tags", "labels"),
    "customer": ("customer", "customer_id", "customer_email", "customer_ref", "account"),
    "title": ("title", "deal", "deal_name", "name"),
    "amount": ("amount", "value", "total", "price", "revenue", "dollar_value", "sales"),
    "currency": ("currency",),
    "stage": ("stage", "deal_stage"),
    "expected_close_date": ("expected_close_date", "close_date", "expected_close"),
    "lost_reason": ("lost_reason", "reason"),
    # A deal's id in the system the file comes from.
    "deal_external_id": (
        "deal_id",
        "external_id",
        "deal_external_id",
        "deal_number",
        "opportunity_id",
        "record_id",
        "id",
    ),
    # Products: a SKU, its name and category; a purchase line's quantity.
    "sku": ("sku", "product", "product_id", "product_sku", "item", "item_id"),
    "product_name": ("product_name", "name", "title", "description", "item_name"),
    "category": ("category", "product_category", "department", "commodity"),
    "quantity": ("quantity", "qty", "units", "count"),
    "date": ("date", "order_date", "purchased_at", "transaction_date", "timestamp", "created_at"),
}


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    skipped: int = 0
    customers_created: int = 0
    attached: int = 0  # rows found to be a customer already there (see ``attach_rows``)

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "skipped": self.skipped,
            "customers_created": self.customers_created,
            "attached": self.attached,
        }


def _key(header: str) -> str:
    return "_".join(header.strip().lower().replace("-", " ").split())


def _columns(
    fieldnames: Iterable[str] | None, wanted: Iterable[str], required: Iterable[str]
) -> dict[str, str]:
    headers = {_key(h): h for h in (fieldnames or []) if h}
    found: dict[str, str] = {}
    for field in wanted:
        for alias in _ALIASES.get(field, (field,)):
            if alias in headers and headers[alias] not in found.values():
                found[field] = headers[alias]
                break
    missing = [f for f in required if f not in found]
    if missing:
        raise CRMError(
            f"The file has no {', '.join(missing)} column.",
            hint="Columns found: " + (", ".join(headers.values()) or "none") + ".",
        )
    return found


class _Table:
    """A CSV file read strictly: the header, then its records with the line each starts on.

    Every problem is a ``CRMError`` naming its line: a quote never closed, a closing quote
    followed by more text, a value over the csv module's size limit, a NUL byte, a record
    with more or fewer values than the header, a header naming a column twice, and a value
    of a one-line column (a name, an email) that runs over several lines, which is what a
    quote left open looks like when it happens to close again further down.
    """

    def __init__(self, file: TextIO) -> None:
        sample = file.read(8192)
        file.seek(0)
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
        # Only the separator is guessed. The sniffer's other guesses come from the first few
        # KB only (a doubled quote further down would then end a value); the rest is RFC 4180.
        self._reader = csv.reader(file, csv.excel, delimiter=delimiter, strict=True)
        try:
            self.header = next(self._reader)
        except StopIteration:
            raise CRMError("The file is empty.", hint="The first line names the columns.") from None
        except csv.Error as exc:
            raise self._error(1, exc) from None
        self._check_header()

    def _check_header(self) -> None:
        _no_nul(1, self.header)
        seen: dict[str, int] = {}
        for number, name in enumerate(self.header, start=1):
            key = _key(name)
            if not key:
                continue
            if key in seen:
                raise CRMError(
                    f"Line 1: the column {name.strip()!r} appears twice "
                    f"(columns {seen[key]} and {number}).",
                    hint="Rename or remove one of them.",
                )
            seen[key] = number

    def _error(self, start: int, exc: csv.Error) -> CRMError:
        text = str(exc)
        if "field limit" in text:
            return CRMError(
                f"Line {start}: a value is longer than {csv.field_size_limit():,} characters.",
                hint="Is a quote left open?",
            )
        if "unexpected end of data" in text or "newline inside string" in text:
            return CRMError(f"Line {start}: a quote opened in this record is never closed.")
        if "expected after" in text:
            return CRMError(
                f"Line {self._reader.line_num}: a closing quote is followed by more text.",
                hint='Inside a quoted value, write a quote twice ("").',
            )
        if "NUL" in text:
            return _nul_error(start)
        return CRMError(f"Line {start}: the file is not a CSV file I can read ({text}).")

    def records(self, one_line: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
        """(line, values by header) of each record that is not blank; the ``one_line``
        columns must not hold a line break."""
        single = [i for i, h in enumerate(self.header) if h in set(one_line)]
        width = len(self.header)
        while True:
            start = self._reader.line_num + 1
            try:
                values = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise self._error(start, exc) from None
            if not any(v.strip() for v in values):
                continue
            _no_nul(start, values)
            end = self._reader.line_num
            for i in single:
                if i < len(values) and ("\n" in values[i] or "\r" in values[i]):
                    shown = " / ".join(values[i].split())[:80]
                    raise CRMError(
                        f"Line {start}: the {self.header[i].strip()} runs over lines {start} to "
                        f"{end} ({shown!r}).",
                        hint="Is a quote left open?",
                    )
            if len(values) != width:
                spans = f" (lines {start} to {end})" if end > start else ""
                raise CRMError(
                    f"Line {start}: {len(values)} values{spans}, but the header has {width} "
                    "columns.",
                    hint="Is a quote left open, or a separator missing?"
                    if end > start or len(values) < width
                    else "Quote values that hold the separator.",
                )
            yield start, dict(zip(self.header, values, strict=True))


def _nul_error(line: int) -> CRMError:
    return CRMError(
        f"Line {line}: the file holds a NUL byte.",
        hint="Save it as UTF-8 text (it may be UTF-16 or not a CSV file at all).",
    )


def _no_nul(line: int, values: Iterable[str]) -> None:
    if any("\x00" in v for v in values):
        raise _nul_error(line)


def _get(row: dict[str, str], cols: dict[str, str], field: str) -> str:
    header = cols.get(field)
    value = row.get(header, "") if header else ""
    return (value or "").strip()


def _date(value: str, field: str) -> date:
    text = value.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y"):
        try:
            return datetime.strptime(text[:10] if fmt == "%Y-%m-%d" else text, fmt).date()
        except ValueError:
            continue
    raise CRMError(f"{value!r} is not a {field}.", hint="Use YYYY-MM-DD.")


def _when(value: str) -> datetime:
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except ValueError:
        return datetime.combine(_date(text, "date"), time(12, 0), tzinfo=UTC)


def _at_line(line: int, exc: CRMError) -> CRMError:
    return CRMError(f"Line {line}: {exc.message}", hint=exc.hint)


def _users_by_email(session: Session) -> dict[str, int]:
    return {email: uid for uid, email in session.execute(sa.select(User.id, User.email)) if email}


def _existing(session: Session, column: Any, values: set[str]) -> dict[str, int]:
    """Map of value -> customer id for values already stored (queried in chunks)."""
    found: dict[str, int] = {}
    items = list(values)
    for start in range(0, len(items), 2_000):
        chunk = items[start : start + 2_000]
        if column is ContactPoint.value:
            found.update(_contact_holders(session, ContactKind.email, chunk))
            continue
        stmt = sa.select(column, Customer.id).where(column.in_(chunk))
        found.update({v: cid for v, cid in session.execute(stmt)})
    return found


def _contact_holders(session: Session, kind: ContactKind, values: list[str]) -> dict[str, int]:
    """Map of value -> customer id for contact values already stored (by keyed hash)."""
    by_digest = contact_digests(session, kind, values)
    stmt = sa.select(ContactPoint.digest, ContactPoint.customer_id).where(  # type: ignore[call-overload]
        ContactPoint.kind == kind, col(ContactPoint.digest).in_(list(by_digest))
    )
    return {by_digest[d]: cid for d, cid in session.execute(stmt)}


# A row whose phone belongs to a customer already is that customer when the names are at least
# this alike (rapidfuzz token-sort ratio of the normalised names, 0-100).
ATTACH_NAME_SIMILARITY = 90.0


def _phone_holders(session: Session, phones: set[str]) -> dict[str, int]:
    """Map of phone number -> the customer holding it, for numbers stored already."""
    holders: dict[str, int] = {}
    listed = sorted(phones)
    for start in range(0, len(listed), 2_000):
        holders.update(_contact_holders(session, ContactKind.phone, listed[start : start + 2_000]))
    return holders


def attach_rows(
    session: Session,
    rows: list[tuple[dict[str, Any], str | None, str | None]],
    *,
    actor: Actor,
    source: str,
    min_similarity: float = ATTACH_NAME_SIMILARITY,
) -> tuple[list[tuple[dict[str, Any], str | None, str | None]], int]:
    """(the rows that are new customers, how many were attached). A row whose phone number a
    customer has already, under a name at least ``min_similarity`` alike, is that customer:
    its email is added to them instead of a second customer being made, with an audit event
    naming both and why. (A phone held under another name stays an error of the file.)"""
    from rapidfuzz import fuzz

    phones = {p for _, _, p in rows if p}
    if not phones:
        return rows, 0
    holders = _phone_holders(session, phones)
    names = {
        cid: (name, key)
        for cid, name, key in session.execute(
            sa.select(Customer.id, Customer.name, Customer.name_key).where(  # type: ignore[call-overload]
                col(Customer.id).in_(set(holders.values()))
            )
        )
    }
    fresh: list[tuple[dict[str, Any], str | None, str | None]] = []
    attached = 0
    for row, email, phone in rows:
        holder = holders.get(phone) if phone else None
        if holder is None or holder not in names:
            fresh.append((row, email, phone))
            continue
        alike = fuzz.token_sort_ratio(name_key(row["name"]), names[holder][1] or "")
        if alike < min_similarity:
            fresh.append((row, email, phone))
            continue
        attach_email(
            session,
            customer_id=holder,
            email=email,
            actor=actor,
            source=source,
            name=row["name"],
            reasons=f"same phone; names {alike:.0f}% alike",
        )
        attached += 1
    return fresh, attached


def import_customers(
    session: Session, file: TextIO, *, actor: Actor, progress: Progress | None = None
) -> ImportResult:
    actor.require_manager("import customers")
    table = _Table(file)
    cols = _columns(
        table.header,
        [
            "external_id",
            "name",
            "email",
            "company",
            "phone",
            "domain",
            "status",
            "owner",
            "tags",
            *ADDRESS_FIELDS,
        ],
        ["name"],
    )
    owners = _users_by_email(session)
    result = ImportResult()
    parsed: list[tuple[dict[str, Any], str | None, str | None]] = []
    seen_emails: set[str] = set()
    seen_ids: set[str] = set()
    for line, row in table.records(cols.values()):
        result.rows += 1
        try:
            name = clean_text(_get(row, cols, "name"), field="name", max_length=200, required=True)
            email = normalise_email(_get(row, cols, "email")) if _get(row, cols, "email") else None
            phone = normalise_phone(_get(row, cols, "phone")) if _get(row, cols, "phone") else None
            domain_text = _get(row, cols, "domain")
            domain = (
                normalise_domain(domain_text)
                if domain_text
                else (company_domain(email) if email else None)
            )
            status_text = _get(row, cols, "status").lower() or CustomerStatus.lead.value
            if status_text not in CustomerStatus.__members__:
                raise CRMError(
                    f"{status_text!r} is not a status.", hint="Use lead, active or churned."
                )
            owner_text = _get(row, cols, "owner").lower()
            if owner_text and owner_text not in owners:
                raise CRMError(
                    f"No user has the email {owner_text!r}.",
                    hint="Add the user first with `user add`.",
                )
            external_id = _get(row, cols, "external_id") or None
            if external_id and len(external_id) > 200:
                raise CRMError("The customer id is longer than 200 characters.")
            address = clean_address({part: _get(row, cols, part) for part in ADDRESS_FIELDS})
        except CRMError as exc:
            raise _at_line(line, exc) from None
        if (email and email in seen_emails) or (external_id and external_id in seen_ids):
            result.skipped += 1
            continue
        if email:
            seen_emails.add(email)
        if external_id:
            seen_ids.add(external_id)
        tags = sorted(
            {
                t.strip().lower()
                for t in _get(row, cols, "tags").replace(";", ",").split(",")
                if t.strip()
            }
        )
        parsed.append(
            (
                {
                    "name": name,
                    "company": clean_text(
                        _get(row, cols, "company"), field="company", max_length=200
                    ),
                    "domain": domain,
                    "status": status_text,
                    "owner_id": owners.get(owner_text),
                    "tags": tags or None,
                    "external_id": external_id,
                    **address,
                },
                email,
                phone,
            )
        )
        if progress and result.rows % 1000 == 0:
            progress(result.rows)
    taken_emails = _existing(session, ContactPoint.value, seen_emails)
    taken_ids = _existing(session, Customer.external_id, seen_ids)
    fresh = [
        (c, e, p)
        for c, e, p in parsed
        if not (e and e in taken_emails)
        and not (c["external_id"] and c["external_id"] in taken_ids)
    ]
    result.skipped += len(parsed) - len(fresh)
    fresh, result.attached = attach_rows(session, fresh, actor=actor, source="import:customers")
    phones = Counter(p for _, _, p in fresh if p)
    taken = {p for p, n in phones.items() if n > 1} | set(_phone_holders(session, set(phones)))
    if taken:
        raise CRMError(
            f"The phone number {sorted(taken)[0]} belongs to two customers: the file gives it to "
            "another name than the customer who has it, or to two rows.",
            hint="Give the row the customer's own name to add it to them, or leave the phone out.",
        )
    ids = (
        bulk.insert_customers(
            session, [c for c, _, _ in fresh], actor=actor, label="import:customers"
        )
        if fresh
        else []
    )
    points = [
        {"customer_id": cid, "kind": ContactKind.email.value, "value": e}
        for cid, (_, e, _) in zip(ids, fresh, strict=True)
        if e
    ]
    points += [
        {"customer_id": cid, "kind": ContactKind.phone.value, "value": p}
        for cid, (_, _, p) in zip(ids, fresh, strict=True)
        if p
    ]
    bulk.insert_contact_points(session, points)
    result.created = result.customers_created = len(ids)
    if progress:
        progress(result.rows)
    return result


def _customer_resolver(session: Session) -> Callable[[str], int | None]:
    cache: dict[str, int | None] = {}

    def resolve(ref: str) -> int | None:
        if ref in cache:
            return cache[ref]
        customer_id: int | None = None
        if "@" in ref:
            point = session.exec(
                select(ContactPoint).where(
                    ContactPoint.kind == ContactKind.email,
                    ContactPoint.digest == contact_digest(session, ContactKind.email, ref),
                )
            ).first()
            customer_id = point.customer_id if point else None
        else:
            found = session.exec(select(Customer.id).where(Customer.external_id == ref)).first()
            if found is None and ref.lstrip("#").isdigit() and ref.startswith("#"):
                found = session.exec(
                    select(Customer.id).where(Customer.id == int(ref.lstrip("#")))
                ).first()
            customer_id = found
        cache[ref] = customer_id
        return customer_id

    return resolve


def deal_key(customer_id: int, title: str) -> tuple[int, str]:
    """What makes two deals without an external id the same: the customer and the title,
    ignoring case and spacing."""
    return customer_id, " ".join(title.casefold().split())


def _stored_deals(
    session: Session, external_ids: set[str], customer_ids: set[int]
) -> tuple[set[str], set[tuple[int, str]]]:
    """External ids already stored, and (customer, title) keys of the stored deals."""
    ids: set[str] = set()
    keys: set[tuple[int, str]] = set()
    wanted = list(external_ids)
    for start in range(0, len(wanted), 2_000):
        chunk = wanted[start : start + 2_000]
        stmt = sa.select(Deal.external_id).where(col(Deal.external_id).in_(chunk))
        ids.update(v for (v,) in session.execute(stmt))
    customers = list(customer_ids)
    for start in range(0, len(customers), 2_000):
        chunk_ids = customers[start : start + 2_000]
        stmt2 = sa.select(Deal.customer_id, Deal.title).where(col(Deal.customer_id).in_(chunk_ids))
        keys.update(deal_key(cid, title) for cid, title in session.execute(stmt2))
    return ids, keys


def _customer_owners(session: Session, customer_ids: set[int]) -> dict[int, int]:
    owners: dict[int, int] = {}
    wanted = list(customer_ids)
    for start in range(0, len(wanted), 2_000):
        chunk = wanted[start : start + 2_000]
        stmt = sa.select(Customer.id, Customer.owner_id).where(
            col(Customer.id).in_(chunk), col(Customer.owner_id).is_not(None)
        )
        owners.update({cid: oid for cid, oid in session.execute(stmt)})
    return owners


def import_deals(
    session: Session,
    file: TextIO,
    *,
    actor: Actor,
    settings: Settings,
    progress: Progress | None = None,
) -> ImportResult:
    """Deals from a CSV file. A deal already stored is skipped: one with the row's external id
    when the row gives one, else one of the same customer with the same title (``deal_key``).
    A deal without an owner gets its customer's."""
    actor.require_manager("import deals")
    table = _Table(file)
    cols = _columns(
        table.header,
        [
            "customer",
            "title",
            "deal_external_id",
            "amount",
            "currency",
            "stage",
            "owner",
            "expected_close_date",
            "lost_reason",
        ],
        ["customer", "title"],
    )
    owners = _users_by_email(session)
    resolve = _customer_resolver(session)
    result = ImportResult()
    deals: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for line, row in table.records(cols.values()):
        result.rows += 1
        try:
            ref = _get(row, cols, "customer")
            customer_id = resolve(ref)
            if customer_id is None:
                raise CRMError(
                    f"No customer matches {ref!r}.",
                    hint="Import the customers first, or use their email.",
                )
            external_id = _get(row, cols, "deal_external_id") or None
            if external_id and len(external_id) > 200:
                raise CRMError("The deal id is longer than 200 characters.")
            stage = (_get(row, cols, "stage") or settings.open_stages[0]).lower()
            if stage not in settings.stage_names:
                raise CRMError(
                    f"{stage!r} is not a deal stage.",
                    hint="Stages: " + ", ".join(settings.stage_names) + ".",
                )
            owner_text = _get(row, cols, "owner").lower()
            if owner_text and owner_text not in owners:
                raise CRMError(f"No user has the email {owner_text!r}.")
            close = _get(row, cols, "expected_close_date")
            status = (
                DealStatus.won
                if stage == WON_STAGE
                else DealStatus.lost
                if stage == LOST_STAGE
                else DealStatus.open
            )
            deals.append(
                {
                    "customer_id": customer_id,
                    "title": clean_text(
                        _get(row, cols, "title"), field="title", max_length=200, required=True
                    ),
                    "external_id": external_id,
                    "amount": parse_money(_get(row, cols, "amount") or "0"),
                    "currency": normalise_currency(
                        _get(row, cols, "currency") or None, settings.default_currency
                    ),
                    "stage": stage,
                    "status": status.value,
                    "owner_id": owners.get(owner_text),
                    "expected_close_date": _date(close, "close date") if close else None,
                    "lost_reason": clean_text(
                        _get(row, cols, "lost_reason"), field="lost reason", max_length=500
                    )
                    if status == DealStatus.lost
                    else None,
                    "closed_at": now if status != DealStatus.open else None,
                }
            )
        except CRMError as exc:
            raise _at_line(line, exc) from None
        if progress and result.rows % 1000 == 0:
            progress(result.rows)
    taken_ids, taken_keys = _stored_deals(
        session,
        {d["external_id"] for d in deals if d["external_id"]},
        {d["customer_id"] for d in deals},
    )
    fresh: list[dict[str, Any]] = []
    for deal in deals:
        # A row seen earlier in the file counts as stored too.
        if deal["external_id"]:
            if deal["external_id"] in taken_ids:
                continue
            taken_ids.add(deal["external_id"])
        else:
            key = deal_key(deal["customer_id"], deal["title"])
            if key in taken_keys:
                continue
            taken_keys.add(key)
        fresh.append(deal)
    result.skipped = len(deals) - len(fresh)
    customer_owners = _customer_owners(
        session, {d["customer_id"] for d in fresh if d["owner_id"] is None}
    )
    for deal in fresh:
        if deal["owner_id"] is None:
            deal["owner_id"] = customer_owners.get(deal["customer_id"])
    ids = bulk.insert_deals(session, fresh, actor=actor, label="import:deals") if fresh else []
    bulk.insert_stage_changes(
        session,
        [
            {
                "deal_id": did,
                "from_stage": None,
                "to_stage": d["stage"],
                "changed_at": now,
                "changed_by": actor.name,
            }
            for did, d in zip(ids, fresh, strict=True)
        ],
    )
    result.created = len(ids)
    if progress:
        progress(result.rows)
    return result


def import_transactions(
    session: Session,
    file: TextIO,
    *,
    actor: Actor,
    settings: Settings,
    source: str = "import:transactions",
    progress: Progress | None = None,
) -> ImportResult:
    """Purchases become ``purchase`` interactions; unknown customers are created (status active).

    A ``product`` column (a SKU) gives each purchase a line item with its ``quantity``
    (1 when empty); a SKU not in the catalogue is added with the row's ``product_name`` and
    ``category``. A row with an empty product is a purchase without a line item.
    """
    actor.require_manager("import transactions")
    table = _Table(file)
    cols = _columns(
        table.header,
        ["external_id", "date", "amount", "currency", "email", "name"],
        ["external_id", "date", "amount"],
    )
    # The product columns are looked up on their own so "name" (the customer) and
    # "product_name" cannot claim the same header.
    product_cols = _product_columns(table.header, set(cols.values()))
    result = ImportResult()
    purchases: list[tuple[str, datetime, Any, str, dict[str, str | None]]] = []
    lines: dict[str, tuple[str, int]] = {}  # purchase external id -> (sku, quantity)
    new_products: dict[str, dict[str, str | None]] = {}
    occurrences: Counter[tuple[str, ...]] = Counter()
    for line, row in table.records(cols.values()):
        result.rows += 1
        try:
            ref = _get(row, cols, "external_id")
            if not ref:
                raise CRMError("The customer id is empty.")
            when = _when(_get(row, cols, "date"))
            amount = parse_money(_get(row, cols, "amount") or "0")
            currency = normalise_currency(
                _get(row, cols, "currency") or None, settings.default_currency
            )
            email = normalise_email(_get(row, cols, "email")) if _get(row, cols, "email") else None
            name = clean_text(_get(row, cols, "name"), field="name", max_length=200)
            if len(ref) > 200:
                raise CRMError("The customer id is longer than 200 characters.")
            item = _line_item(row, product_cols)
        except CRMError as exc:
            raise _at_line(line, exc) from None
        triple: tuple[str, ...] = (ref, when.isoformat(), str(amount))
        if item:
            # The product is part of the key: two products bought at once are two purchases.
            triple = (*triple, item[0])
            new_products.setdefault(item[0], {"name": item[2], "category": item[3]})
        occurrences[triple] += 1
        # Same customer, time and amount twice in one file are two purchases; the count keeps
        # their ids apart while making a re-import of the same file collide with the first.
        digest = hashlib.sha1("|".join((*triple, str(occurrences[triple]))).encode()).hexdigest()[
            :24
        ]
        if item:
            lines[digest] = (item[0], item[1])
        purchases.append(
            (
                ref,
                when,
                amount,
                currency,
                {"email": email, "name": name, "external_id": digest},
            )
        )
        if progress and result.rows % 5000 == 0:
            progress(result.rows)
    refs = {p[0] for p in purchases}
    known = _existing(session, Customer.external_id, refs)
    new_refs: dict[str, dict[str, str | None]] = {}
    for ref, _, _, _, extra in purchases:
        if ref not in known and ref not in new_refs:
            new_refs[ref] = extra
    if new_refs:
        taken = _existing(
            session, ContactPoint.value, {e["email"] for e in new_refs.values() if e["email"]}
        )
        first_seen: dict[str, datetime] = {}
        for ref, when, *_ in purchases:
            if ref in new_refs and (ref not in first_seen or when < first_seen[ref]):
                first_seen[ref] = when
        # Two new customers in one file may share an address (a family, a shared inbox): the
        # first one seen gets it as a contact point; the others keep it only in their name row.
        claimed: set[str] = set(taken)
        for extra in new_refs.values():
            email = extra["email"]
            if email and email in claimed:
                extra["email"] = None
            elif email:
                claimed.add(email)
        rows_in = [
            {
                "name": extra["name"] or f"Customer {ref}",
                "external_id": ref,
                "status": CustomerStatus.active.value,
                "domain": company_domain(extra["email"]) if extra["email"] else None,
                "created_at": first_seen[ref],
            }
            for ref, extra in new_refs.items()
        ]
        ids = bulk.insert_customers(session, rows_in, actor=actor, label=source)
        known.update(dict(zip(new_refs, ids, strict=True)))
        bulk.insert_contact_points(
            session,
            [
                {
                    "customer_id": known[ref],
                    "kind": ContactKind.email.value,
                    "value": extra["email"],
                }
                for ref, extra in new_refs.items()
                if extra["email"]
            ],
        )
        result.customers_created = len(ids)
    interactions = [
        {
            "customer_id": known[ref],
            "channel": Channel.purchase.value,
            "direction": Direction.inbound.value,
            "occurred_at": when,
            "amount": amount,
            "currency": currency,
            "source": source,
            "external_id": extra["external_id"],
            "subject": "Purchase",
            "body": "",
            "author": None,
        }
        for ref, when, amount, currency, extra in purchases
    ]
    stored_before: set[str] = set()
    if lines:
        stored_before = set(_interaction_ids(session, source, set(lines)))
    result.created = (
        bulk.insert_interactions(session, interactions, actor=actor, label=source)
        if interactions
        else 0
    )
    result.skipped = len(interactions) - result.created
    fresh_lines = {k: v for k, v in lines.items() if k not in stored_before}
    if fresh_lines:
        product_ids = _ensure_products(session, new_products, actor=actor, label=source)
        interaction_ids = _interaction_ids(session, source, set(fresh_lines))
        bulk.insert_purchase_lines(
            session,
            [
                {
                    "interaction_id": interaction_ids[key],
                    "product_id": product_ids[sku],
                    "quantity": quantity,
                }
                for key, (sku, quantity) in fresh_lines.items()
            ],
            actor=actor,
            label=source,
        )
    if progress:
        progress(result.rows)
    return result


def _product_columns(fieldnames: Iterable[str] | None, taken: set[str]) -> dict[str, str]:
    headers = {_key(h): h for h in (fieldnames or []) if h and h not in taken}
    found: dict[str, str] = {}
    for field in ("sku", "product_name", "category", "quantity"):
        for alias in _ALIASES[field]:
            if alias in headers and headers[alias] not in found.values():
                found[field] = headers[alias]
                break
    return found


def _quantity(value: str) -> int:
    if not value:
        return 1
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        raise CRMError(f"The quantity {value!r} is not a number.") from None
    if number != int(number) or not 1 <= number <= 1_000_000:
        raise CRMError(f"The quantity {value!r} is not a whole number from 1 to 1,000,000.")
    return int(number)


def _line_item(
    row: dict[str, str], cols: dict[str, str]
) -> tuple[str, int, str | None, str | None] | None:
    """(sku, quantity, name, category) of a purchase row, or None when it names no product."""
    if "sku" not in cols:
        return None
    sku = _get(row, cols, "sku")
    if not sku:
        return None
    if len(sku) > 200:
        raise CRMError("The product SKU is longer than 200 characters.")
    quantity = _quantity(_get(row, cols, "quantity") if "quantity" in cols else "")
    name = (
        clean_text(_get(row, cols, "product_name"), field="product name", max_length=300)
        if "product_name" in cols
        else None
    )
    category = (
        clean_text(_get(row, cols, "category"), field="category", max_length=200)
        if "category" in cols
        else None
    )
    return sku, quantity, name or None, category or None


def _ensure_products(
    session: Session,
    wanted: dict[str, dict[str, str | None]],
    *,
    actor: Actor,
    label: str,
) -> dict[str, int]:
    """Ids of the SKUs in ``wanted``; those not in the catalogue yet are added."""
    ids = _products_by_sku(session, set(wanted))
    missing = [sku for sku in wanted if sku not in ids]
    if missing:
        new_ids = bulk.insert_products(
            session,
            [
                {
                    "sku": sku,
                    "name": wanted[sku]["name"] or sku,
                    "category": wanted[sku]["category"],
                }
                for sku in missing
            ],
            actor=actor,
            label=label,
        )
        ids.update(zip(missing, new_ids, strict=True))
    return ids


def _interaction_ids(session: Session, source: str, keys: set[str]) -> dict[str, int]:
    """Map of external id -> interaction id for this source's interactions already stored."""
    found: dict[str, int] = {}
    items = sorted(keys)
    for start in range(0, len(items), 2_000):
        chunk = items[start : start + 2_000]
        stmt = sa.select(Interaction.external_id, Interaction.id).where(
            Interaction.source == source,
            col(Interaction.external_id).in_(chunk),
        )
        found.update({k: iid for k, iid in session.execute(stmt)})
    return found


def _products_by_sku(session: Session, skus: set[str]) -> dict[str, int]:
    return bulk.product_ids(session, list(skus))


def import_products(
    session: Session,
    file: TextIO,
    *,
    actor: Actor,
    progress: Progress | None = None,
) -> ImportResult:
    """The product catalogue: ``sku`` (or ``product``), ``name``, ``category``.

    A SKU already in the catalogue is skipped, as is a SKU's second row in the same file.
    """
    actor.require_manager("import products")
    table = _Table(file)
    cols = _columns(table.header, ["sku", "product_name", "category"], ["sku"])
    result = ImportResult()
    rows: dict[str, dict[str, str | None]] = {}
    for line, row in table.records(cols.values()):
        result.rows += 1
        try:
            sku = _get(row, cols, "sku")
            if not sku:
                raise CRMError("The SKU is empty.")
            if len(sku) > 200:
                raise CRMError("The SKU is longer than 200 characters.")
            name = clean_text(_get(row, cols, "product_name"), field="name", max_length=300)
            category = clean_text(_get(row, cols, "category"), field="category", max_length=200)
        except CRMError as exc:
            raise _at_line(line, exc) from None
        rows.setdefault(sku, {"name": name or None, "category": category or None})
        if progress and result.rows % 5000 == 0:
            progress(result.rows)
    stored = _products_by_sku(session, set(rows))
    fresh = {sku: v for sku, v in rows.items() if sku not in stored}
    if fresh:
        _ensure_products(session, fresh, actor=actor, label="import:products")
    result.created = len(fresh)
    result.skipped = result.rows - result.created
    if progress:
        progress(result.rows)
    return result
