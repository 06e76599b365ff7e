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
    found = json.loads(out)
    rules = {(r["antecedent"], r["consequent"]): r for r in found if r["antecedent2"] is None}
    assert ("TEAM", "SEATS") in rules and rules[("TEAM", "SEATS")]["lift"] > 1.2
    assert rules[("TEAM", "SEATS")]["consequent_name"] == "Add-on seats"
    assert not any("TRAIN" in pair for pair in rules)
    top = max(r["lift"] for r in found)
    code, out, _ = crmbot("analytics", "rules", "--min-lift", str(top + 0.01), "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = crmbot("analytics", "rules", "--level", "category")
    assert code == 0 and "Plans" in out and "Add-ons" in out
    code, _, err = crmbot("analytics", "rules", "--level", "brand")
    assert code == 2 and "'brand' is not a level" in err


def test_no_purchase_lines_says_so(crmbot):
    code, out, _ = crmbot("analytics", "rules")
    assert code == 0 and "No product rules" in out


def test_refresh_stores_next_products_and_the_card_shows_them_with_the_reason(crmbot, db, tmp_path):
    from sqlmodel import select

    from crm.models import Customer

    path = _purchases(tmp_path)
    bought: dict[str, set[str]] = {}
    for line in path.read_text().splitlines()[1:]:
        ref, *_, sku, _, _ = line.split(",")
        bought.setdefault(ref, set()).add(sku)
    assert crmbot("import", "transactions", str(path))[0] == 0
    assert crmbot("analytics", "refresh")[0] == 0
    with db.session() as s:
        ids = dict(s.exec(select(Customer.external_id, Customer.id)).all())
    team_only = [ref for ref, skus in bought.items() if "TEAM" in skus and "SEATS" not in skus]
    seats_done = [ref for ref, skus in bought.items() if {"TEAM", "SEATS"} <= skus]
    assert team_only and seats_done
    code, out, _ = crmbot("customer", "show", f"#{ids[team_only[0]]}", "--json")
    first = json.loads(out)["next_products"][0]
    assert code == 0 and first.startswith("Add-on seats: bought Team plan; ")
    assert "of such customers buy Add-on seats" in first and "x the usual rate" in first
    code, out, _ = crmbot("customer", "show", f"#{ids[team_only[0]]}")
    assert "Likely to buy next:" in out and "Add-on seats: bought Team plan" in out
    # Nothing is suggested that the customer bought already.
    code, out, _ = crmbot("customer", "show", f"#{ids[seats_done[0]]}", "--json")
    assert not any(
        p.startswith(("Add-on seats", "Team plan")) for p in json.loads(out)["next_products"]
    )
