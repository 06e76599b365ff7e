"""Targeting a campaign by uplift: whom earlier campaigns moved, learned and applied.

Every member of an earlier campaign that was sent is one training row: the customer's features
as they were when that campaign went out, their arm, and whether they responded in its window.
The uplift model (crm.analytics.uplift, chosen by cross-validated Qini) then scores the new
audience on today's features, and the ``budget`` customers it expects to move most are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlmodel import Session, col, select

from crm.analytics.churn import MODEL_FEATURES
from crm.analytics.features import build_features
from crm.analytics.uplift import UpliftModel
from crm.models import Campaign, CampaignMember, utcnow
from crm.models.campaign import TREATMENT
from crm.services import campaigns as campaign_svc
from crm.services.errors import CRMError

MIN_RESPONDERS_PER_ARM = 10


@dataclass(frozen=True)
class Targeted:
    customer_ids: list[int]
    model: str
    campaigns: int
    rows: int


def _matrix(frame: pd.DataFrame) -> np.ndarray:
    cols = [c for c in MODEL_FEATURES if c in frame.columns]
    return frame[cols].astype(float).fillna(0.0).to_numpy()


def training_rows(session: Session) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(features, treated, responded) over the members of every campaign sent so far."""
    campaigns = session.exec(
        select(Campaign).where(col(Campaign.started_at).is_not(None)).order_by(col(Campaign.id))
    ).all()
    xs, ts, ys = [], [], []
    for campaign in campaigns:
        members = session.exec(
            select(CampaignMember.customer_id, CampaignMember.arm).where(
                CampaignMember.campaign_id == campaign.id
            )
        ).all()
        if not members:
            continue
        assert campaign.started_at is not None
        frame = build_features(session, campaign.started_at, customer_ids=[m[0] for m in members])
        got = campaign_svc.responses(session, campaign)
        arm = dict(members)
        ids = [int(i) for i in frame.index]
        xs.append(_matrix(frame))
        ts.append(np.array([arm[i] == TREATMENT for i in ids], dtype=int))
        ys.append(np.array([got.get(i, (False, 0.0))[0] for i in ids], dtype=int))
    if not xs:
        return np.empty((0, len(MODEL_FEATURES))), np.empty(0), np.empty(0), 0
    return np.vstack(xs), np.concatenate(ts), np.concatenate(ys), len(xs)


def pick_by_uplift(
    session: Session, candidate_ids: Sequence[int], *, budget: int, now: datetime | None = None
) -> Targeted:
    """The ``budget`` candidates with the highest expected uplift; CRMError when earlier
    campaigns have too few responses in either arm to learn from."""
    if budget < 1:
        raise CRMError("The budget must be at least 1 customer.", hint="Use e.g. --budget 500.")
    x, treated, y, n_campaigns = training_rows(session)
    for arm, name in ((1, "treated"), (0, "control")):
        responders = int(y[treated == arm].sum()) if len(y) else 0
        non = int((y[treated == arm] == 0).sum()) if len(y) else 0
        if min(responders, non) < MIN_RESPONDERS_PER_ARM:
            raise CRMError(
                f"Earlier campaigns have {responders} responders and {non} non-responders in "
                f"their {name} arms; uplift targeting needs at least "
                f"{MIN_RESPONDERS_PER_ARM} of each.",
                hint="Send and measure a campaign with a control group first, or target a segment.",
            )
    model = UpliftModel.train(x, treated, y)
    frame = build_features(session, now or utcnow(), customer_ids=list(candidate_ids))
    scores = pd.Series(model.uplift(_matrix(frame)), index=frame.index).sort_values(
        ascending=False, kind="stable"
    )
    chosen = sorted(int(i) for i in scores.index[:budget])
    return Targeted(chosen, model.name, n_campaigns, len(y))
