"""Slack action ids shared by the listeners and every message that carries buttons (cards, digests)."""

FOLLOW_UP_DONE = "followup_done"
FOLLOW_UP_SNOOZE_DAY = "followup_snooze_day"
FOLLOW_UP_SNOOZE_WEEK = "followup_snooze_week"
OPEN_CUSTOMER = "card_show"
LOG_NOTE = "card_log_note"
