"""Customer value in an analytics refresh: read the purchases, predict, store per run."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlmodel import Session, col

from crm.analytics import value
from crm.analytics.features import _PURCHASE, Snapshot
from crm.models import Channel, Interaction


def read_purchases(session: Session, cutoff: datetime) -> pd.DataFrame:
    """customer_id, date (naive UTC), amount: every purchase with an amount before ``cutoff``."""
    rows = session.execute(
        sa.select(
            col(Interaction.customer_id), col(Interaction.occurred_at), col(Interaction.amount)
        ).where(
            col(Interaction.channel) == Channel.purchase,
            col(Interaction.amount).is_not(None),
            col(Interaction.occurred_at) < cutoff,
        )
    ).all()
    if not rows:
        return pd.DataFrame(
            {"customer_id": [], "date": pd.to_datetime([]), "amount": np.array([], float)}
        )
    ids, at, amount = zip(*rows, strict=True)
    dates = pd.to_datetime(list(at), utc=True).tz_localize(None)
    return pd.DataFrame(
        {"customer_id": np.asarray(ids), "date": dates, "amount": np.asarray(amount, float)}
    )


def compute_values(session: Session, cutoff: datetime, horizon_months: int) -> pd.DataFrame:
    """Indexed by customer id: purchases, spend (over the horizon) and p_alive."""
    purchases = read_purchases(session, cutoff)
    weeks = value.horizon_weeks(horizon_months)
    return value.predict_value(purchases, cutoff, weeks).frame


def purchases_from_snapshot(snapshot: Snapshot) -> pd.DataFrame:
    """What ``read_purchases`` gives, from the refresh's one packed read of the store: its
    purchases with an amount (the snapshot holds 0 where a purchase has none)."""
    events = snapshot.events
    mine = (events.channel == _PURCHASE) & (events.amount != 0)
    return pd.DataFrame(
        {
            "customer_id": snapshot.customer_id[events.customer[mine]],
            "date": pd.to_datetime(events.at[mine], unit="us"),
            "amount": events.amount[mine].astype(float),
        }
    )


def values_from_snapshot(snapshot: Snapshot, cutoff: datetime, horizon_months: int) -> pd.DataFrame:
    """``compute_values`` on the snapshot the refresh has already read."""
    weeks = value.horizon_weeks(horizon_months)
    return value.predict_value(purchases_from_snapshot(snapshot), cutoff, weeks).frame


# A customer the model thinks almost surely gone would otherwise get a stake many times their
# history: P(alive) counts as at least this much.
P_ALIVE_FLOOR = 0.1


def value_at_stake(features: pd.DataFrame, values: pd.DataFrame) -> tuple[pd.Series, int]:
    """What leaves with each customer of ``features`` (indexed by customer id) if they leave, and
    for how many the value model said: their expected spend over the value horizon were they to
    stay (the model's expected spend over its P(alive), floored at ``P_ALIVE_FLOOR``), plus
    their open deals; where the model has no prediction (too little history), the last 12
    months' purchases plus open deals.

    Not the expected spend itself: that already counts the chance they leave, and the churn
    digest multiplies the stake by that chance."""
    if len(values):
        stay = (values["spend"] / values["p_alive"].clip(lower=P_ALIVE_FLOOR)).reindex(
            features.index
        )
    else:
        stay = pd.Series(np.nan, index=features.index)
    predicted = stay.notna()
    base = stay.where(predicted, features["value_365"])
    return base + features["open_deal_value"], int(predicted.sum())
