"""Fuzzy customer-name search.

Exact lookups (email, domain, id) go straight to indexed SQL. Fuzzy names need every name,
so each process keeps an in-memory index of (id, name key) that it refreshes incrementally
from ``customers.updated_at`` before each search: other replicas' changes are seen at once.
A process loads it at start-up (``warm_name_index``); the periodic full rebuild runs in the
background while searches go on with the index they have.

Scoring every name with rapidfuzz's WRatio costs ~1.5 µs a name, too slow for 100k+
customers. So the index also keeps a token vocabulary with posting lists: each query word
is matched (fuzzily, and as a prefix) against the vocabulary, candidates are ranked by how
many query words they share, and only the best few hundred are scored in full.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlmodel import Session

from crm.models import Customer
from crm.services.normalise import name_key

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

CANDIDATES = 400  # names scored in full per query
# From this many names on, candidates are counted in numpy arrays; below it plain Python is as
# quick, and a command line search does not pay numpy's load time.
NUMPY_FROM = 20_000
TOKEN_CUTOFF = 75.0  # how alike a query word and a name word must be to count as shared
# Change detection looks back this far (rows committed late by another replica), and the whole
# index is rebuilt this often (to drop merged-away customers and anything missed).
LOOKBACK = timedelta(seconds=30)
FULL_RELOAD_EVERY = 600.0


_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
# Run before every search: built once.
_NEWEST = sa.select(
    sa.select(sa.func.max(_CUSTOMERS.c.id)).scalar_subquery(),
    sa.select(sa.func.max(_CUSTOMERS.c.updated_at)).scalar_subquery(),
)


@dataclass
class _Index:
    ids: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    position: dict[int, int] = field(default_factory=dict)
    postings: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    arrays: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # postings as arrays, built on demand
    loaded_at: float = 0.0
    max_id: int = 0
    vocabulary: list[str] = field(default_factory=list)  # sorted, for prefix search
    vocabulary_dirty: bool = True
    mark: datetime | None = None

    def put(self, cid: int, key: str) -> None:
        pos = self.position.get(cid)
        if cid > self.max_id:
            self.max_id = cid
        if pos is None:
            pos = self.position[cid] = len(self.ids)
            self.ids.append(cid)
            self.keys.append(key)
        else:
            self.keys[pos] = key  # old words stay in their postings; full scoring ignores them
        for token in set(key.split()):
            postings = self.postings[token]
            if not postings:
                self.vocabulary_dirty = True
            if not postings or postings[-1] != pos:
                postings.append(pos)
                self.arrays.pop(token, None)

    def positions(self, word: str) -> np.ndarray:
        import numpy as np

        array = self.arrays.get(word)
        if array is None:
            array = self.arrays[word] = np.asarray(self.postings.get(word, ()), dtype=np.int64)
        return array

    def words(self) -> list[str]:
        if self.vocabulary_dirty:
            self.vocabulary = sorted(self.postings)
            self.vocabulary_dirty = False
        return self.vocabulary


class NameIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = _Index()
        self._rebuild: threading.Thread | None = None  # a full rebuild under way, if any
        self._loads = 0  # full loads made in the foreground: a rebuild older than one is stale

    @staticmethod
    def _load(index: _Index, session: Session, where: Any = None) -> None:
        """Put the customers (all, or those ``where`` selects) into ``index``."""
        stmt = sa.select(Customer.id, Customer.name_key, Customer.company, Customer.updated_at)
        if where is not None:
            stmt = stmt.where(where)
        for cid, key, company, updated in session.execute(stmt.order_by(Customer.id)):
            index.put(cid, _search_key(key, company))
            if index.mark is None or updated > index.mark:
                index.mark = updated

    def _full_load(self, session: Session) -> _Index:
        index = _Index(loaded_at=time.monotonic())
        self._load(index, session)
        return index

    def warm(self, session: Session) -> None:
        """Load the index now (at start-up), so that no user's first search waits for it."""
        with self._lock:
            self.refresh(session)

    def _rebuild_in_background(self, session: Session) -> None:
        """Start a full rebuild (it drops merged-away customers and anything missed); searches
        go on with the current index, which the rebuilt one replaces when it is ready."""
        if self._rebuild is not None and self._rebuild.is_alive():
            return
        bind = session.get_bind()
        # Its own connection (a session's connection is not shared across threads), and a plain
        # read: the caller may be a write unit, which on SQLite would take the write lock.
        engine = bind.engine if isinstance(bind, sa.Connection) else bind
        engine = engine.execution_options(sqlite_begin="DEFERRED")
        started_after = self._loads

        def rebuild() -> None:
            try:
                with Session(engine) as own:
                    fresh = self._full_load(own)
            except Exception:  # the current index keeps serving; a rebuild is tried again later
                logger.exception("could not rebuild the customer name index")
                with self._lock:
                    self._index.loaded_at = time.monotonic()
                return
            with self._lock:
                if self._loads == started_after:  # else a newer full load replaced the index
                    # Changes committed since its snapshot are picked up by the next refresh.
                    self._index = fresh

        self._rebuild = threading.Thread(target=rebuild, name="name-index-rebuild", daemon=True)
        self._rebuild.start()

    def _replace(self, index: _Index) -> None:
        self._index = index
        self._loads += 1

    def refresh(self, session: Session) -> None:
        """Pick up customers added (higher id) or changed (newer updated_at) since the last search.

        Two indexed max() lookups; new rows are found by id, so rows written with old
        timestamps (imports, demo data) are seen at once too. Called with the lock held.
        """
        index = self._index
        if index.mark is None:  # nothing loaded yet: this search has to wait for it
            self._replace(self._full_load(session))
            return
        if time.monotonic() - index.loaded_at > FULL_RELOAD_EVERY:
            self._rebuild_in_background(session)
        newest_id, newest = session.execute(_NEWEST).one()
        if isinstance(newest, str):
            newest = datetime.fromisoformat(newest)
        if newest_id is None:
            return
        if newest_id < index.max_id:  # rows vanished (merges, a restored backup): start afresh
            self._replace(self._full_load(session))
            return
        changed = newest is not None and newest.replace(tzinfo=None) > index.mark.replace(
            tzinfo=None
        )
        added = newest_id > index.max_id
        if not changed and not added:
            return
        conditions = []
        if changed:
            conditions.append(Customer.updated_at >= index.mark - LOOKBACK)
        if added:
            conditions.append(Customer.id > index.max_id)
        self._load(index, session, sa.or_(*conditions))

    def _candidates(self, index: _Index, query: str) -> list[int]:
        tokens = query.split()
        if not tokens or len(index.ids) <= CANDIDATES:
            return list(range(len(index.ids)))
        vocabulary = index.words()
        # For each query word, the name words like it; a name's rank is how many query words
        # it has (a name counts once per query word, however many of its words resemble it).
        groups = [g for g in (_similar_words(vocabulary, t) for t in set(tokens)) if g]
        if not groups:
            return []
        if len(index.ids) >= NUMPY_FROM:
            return _top_by_numpy(index, groups)
        shared = [0] * len(index.ids)
        for words in groups:
            for pos in {p for word in words for p in index.postings.get(word, ())}:
                shared[pos] += 1
        ranked = heapq.nsmallest(
            CANDIDATES, (p for p, n in enumerate(shared) if n), key=lambda p: (-shared[p], p)
        )
        return ranked

    def search(
        self, session: Session, query: str, limit: int = 10, cutoff: float = 60.0
    ) -> list[tuple[int, float]]:
        with self._lock:
            self.refresh(session)
            index = self._index
            wanted = name_key(query)
            positions = self._candidates(index, wanted)
            choices = {p: index.keys[p] for p in positions}
            matches = process.extract(
                wanted, choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=cutoff
            )
            return [(index.ids[pos], float(score)) for _, score, pos in matches]


def _similar_words(vocabulary: list[str], token: str) -> set[str]:
    """The words of the vocabulary like ``token``: close in spelling, or starting with it."""
    similar = {
        w
        for w, _, _ in process.extract(
            token, vocabulary, scorer=fuzz.ratio, score_cutoff=TOKEN_CUTOFF, limit=25
        )
    }
    if len(token) >= 3:  # a word being typed: "acm" finds "acme"
        start = bisect.bisect_left(vocabulary, token)
        for word in vocabulary[start : start + 25]:
            if not word.startswith(token):
                break
            similar.add(word)
    return similar


def _top_by_numpy(index: _Index, groups: list[set[str]]) -> list[int]:
    """The same ranking as the counting in ``_candidates``, in arrays for large indexes."""
    import numpy as np

    shared = np.zeros(len(index.ids), dtype=np.int32)
    for words in groups:
        has_word = np.zeros(len(index.ids), dtype=bool)
        for word in words:
            has_word[index.positions(word)] = True
        shared += has_word
    if len(shared) > CANDIDATES:
        top = np.argpartition(-shared, CANDIDATES)[:CANDIDATES]
    else:
        top = np.arange(len(shared))
    ranked = top[np.lexsort((top, -shared[top]))]
    return [int(p) for p in ranked if shared[p] > 0]


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


def warm_name_index(session: Session) -> None:
    """Load this process's name index for the session's database before serving users."""
    name_index_for(session).warm(session)


def forget_indexes() -> None:
    """Drop every cached index (e.g. after the database was emptied or restored under us)."""
    with _indexes_lock:
        _indexes.clear()
