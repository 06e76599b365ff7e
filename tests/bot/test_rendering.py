from __future__ import annotations

from jinja2 import Environment

from bot.rendering import register_filters, slack_escape, truncate


def test_slack_escape_touches_only_amp_lt_gt():
    assert slack_escape("Tom & Jerry <@U123> > 'quotes' \"double\"") == (
        "Tom &amp; Jerry &lt;@U123&gt; &gt; 'quotes' \"double\""
    )
    assert slack_escape(None) == "" and slack_escape(42) == "42"


def test_filter_in_templates_and_truncate():
    env = register_filters(Environment(autoescape=False))
    assert (
        env.from_string("{{ name | slack_escape }}").render(name="<!channel> & co")
        == "&lt;!channel&gt; &amp; co"
    )
    assert truncate("abcdef", 4) == "abc…" and truncate("abc", 4) == "abc"


def test_plural_says_1_deal_and_2_deals():
    from bot.rendering import plural

    assert plural(1, "deal") == "1 deal"
    assert plural(0, "deal") == "0 deals"
    assert plural(1_500, "match", "matches") == "1,500 matches"


def test_zone_label_names_the_zone_or_its_offset():
    from datetime import UTC, datetime

    from bot.rendering import in_zone

    moment = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    assert in_zone(moment, "Europe/Berlin", "%H:%M") == "09:00 CET"
    assert in_zone(moment, "America/New_York", "%H:%M") == "03:00 EST"
    assert in_zone(moment, "America/Sao_Paulo", "%H:%M") == "05:00 UTC-03"
    assert in_zone(moment, "Asia/Kolkata", "%H:%M") == "13:30 IST"
    assert in_zone(moment, "Asia/Kathmandu", "%H:%M") == "13:45 UTC+05:45"
    assert in_zone(moment, "Not/AZone", "%H:%M") == "08:00 UTC"


def test_no_count_is_written_with_a_plural_in_brackets():
    """'1 deal(s)' reads badly: counts in the command line and Slack go through plural()."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "bot"
    shape = re.compile(r"[a-z]\((s|es)\)")
    found = []
    for folder in ("cli", "slack", "handlers"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if shape.search(node.value) and "http(s)" not in node.value:
                        found.append(f"{path.name}:{node.lineno}: {node.value.strip()[:60]}")
    assert found == []
