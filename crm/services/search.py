"""Fuzzy customer-name search.

Exact lookups (email, domain, id) go straight to indexed SQL. Fuzzy names need every name,
so each process keeps a small in-memory index of (id, name key) that it refreshes
incrementally from ``customers.updated_at`` before each search: other replicas' changes are
seen at once, and a search costs one indexed ``max()`` query plus rapidfuzz's C scan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlmodel import Session

from crm.models import Customer
from crm.services.normalise import name_key


@dataclass
class _Index:
    ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    position: dict[int, int] = field(default_factory=dict)
    mark: datetime | None = None
    count: int = 0


class NameIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = _Index()

    def _full_load(self, session: Session) -> None:
        index = _Index()
        rows = session.execute(
            sa.select(Customer.id, Customer.name_key, Customer.company, Customer.updated_at)
        )
        for cid, key, company, updated in rows:
            index.position[cid] = len(index.ids)
            index.ids.append(cid)
            index.keys.append(_search_key(key, company))
            if index.mark is None or updated > index.mark:
                index.mark = updated
        index.count = len(index.ids)
        self._index = index

    def refresh(self, session: Session) -> None:
        count, mark = session.execute(
            sa.select(sa.func.count(Customer.id), sa.func.max(Customer.updated_at))
        ).one()
        if isinstance(mark, str):
            mark = datetime.fromisoformat(mark)
        index = self._index
        if mark is not None and mark.tzinfo is not None:
            mark = mark.replace(tzinfo=None)
        current = index.mark.replace(tzinfo=None) if index.mark else None
        if count == index.count and mark == current:
            return
        if index.mark is None or count < index.count:
            self._full_load(session)  # first use, or customers were merged away
            return
        rows = session.execute(
            sa.select(Customer.id, Customer.name_key, Customer.company, Customer.updated_at).where(
                Customer.updated_at >= index.mark
            )
        )
        for cid, key, company, updated in rows:
            pos = index.position.get(cid)
            if pos is None:
                index.position[cid] = len(index.ids)
                index.ids.append(cid)
                index.keys.append(_search_key(key, company))
            else:
                index.keys[pos] = _search_key(key, company)
            if updated > index.mark:
                index.mark = updated
        index.count = len(index.ids)
        if index.count != count:
            self._full_load(session)

    def search(
        self, session: Session, query: str, limit: int = 10, cutoff: float = 60.0
    ) -> list[tuple[int, float]]:
        with self._lock:
            self.refresh(session)
            keys, ids = self._index.keys, self._index.ids
            matches = process.extract(
                name_key(query), keys, scorer=fuzz.WRatio, limit=limit, score_cutoff=cutoff
            )
        return [(ids[pos], score) for _, score, pos in matches]


def _search_key(key: str, company: str | None) -> str:
    if company:
        company_key = name_key(company)
        if company_key and company_key not in key:
            return f"{key} {company_key}"
    return key


_indexes: dict[str, NameIndex] = {}
_indexes_lock = threading.Lock()


def name_index_for(session: Session) -> NameIndex:
    bind = session.get_bind()
    url = bind.engine.url.render_as_string(hide_password=False)
    with _indexes_lock:
        index = _indexes.get(url)
        if index is None:
            index = _indexes[url] = NameIndex()
    return index
