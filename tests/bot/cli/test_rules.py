"""`crmbot analytics rules` over imported purchase lines."""

from __future__ import annotations

import json
import random

import pytest

pytestmark = pytest.mark.usefixtures("cli_timezone")


def _purchases(tmp_path):
    """60 customers: whoever buys the Team plan mostly adds seats; others buy seats less
    often and training (everyone buys something)."""
    rng = random.Random(5)
    rows = ["customer_id,date,amount,product,product_name,category"]
    for c in range(60):
        day = 1
        if c % 2 == 0:
            rows.append(f"C-{c},2026-01-{day:02d},100,TEAM,Team plan,Plans")
            day += 1
            if rng.random() < 0.9:
                rows.append(f"C-{c},2026-01-{day:02d},20,SEATS,Add-on seats,Add-ons")
                day += 1
        elif rng.random() < 0.3:
            rows.append(f"C-{c},2026-01-{day:02d},20,SEATS,Add-on seats,Add-ons")
            day += 1
        if rng.random() < 0.4 or day == 1:
            rows.append(f"C-{c},2026-01-{day:02d},50,TRAIN,Training,Services")
    path = tmp_path / "purchases.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_rules_name_the_planted_pair_and_filter_by_lift(crmbot, tmp_path):
    assert crmbot("import", "transactions", str(_purchases(tmp_path)))[0] == 0
    code, out, _ = crmbot("analytics", "rules", "--json")
    assert code == 0
    rules = {(r["antecedent"], r["consequent"]): r for r in json.loads(out)}
    assert ("TEAM", "SEATS") in rules and rules[("TEAM", "SEATS")]["lift"] > 1.2
    assert rules[("TEAM", "SEATS")]["consequent_name"] == "Add-on seats"
    assert not any("TRAIN" in pair for pair in rules)
    top = max(r["lift"] for r in rules.values())
    code, out, _ = crmbot("analytics", "rules", "--min-lift", str(top + 0.01), "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = crmbot("analytics", "rules", "--level", "category")
    assert code == 0 and "Plans" in out and "Add-ons" in out
    code, _, err = crmbot("analytics", "rules", "--level", "brand")
    assert code == 2 and "'brand' is not a level" in err


def test_no_purchase_lines_says_so(crmbot):
    code, out, _ = crmbot("analytics", "rules")
    assert code == 0 and "No product rules" in out
