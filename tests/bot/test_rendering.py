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
