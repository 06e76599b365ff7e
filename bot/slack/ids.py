"""Slack ids shared by the listeners and every payload that carries buttons, menus or forms.

A button's ``action_id`` is what Bolt routes the click by: the card, list, Home and digest that
show a button and the listener that answers it take the id from here, so they always agree.
The values are what Slack stores in messages already sent; changing one orphans old buttons.
"""

# Buttons and menus (action ids).
LOG_NOTE = "card_log_note"
NEW_DEAL = "card_new_deal"
FOLLOW_UP = "card_follow_up"
TIMELINE = "card_timeline"
OPEN_CUSTOMER = "card_show"
FOLLOW_UP_DONE = "followup_done"
FOLLOW_UP_SNOOZE_DAY = "followup_snooze_day"
FOLLOW_UP_SNOOZE_WEEK = "followup_snooze_week"
MOVE_STAGE = "deal_move_stage"
NEXT_PAGE = "page"
DUPLICATE_MERGE = "duplicate_merge"
DUPLICATE_DISMISS = "duplicate_dismiss"
UNDO_MERGE = "merge_undo"
# A survey's rating buttons: ``csat_rate_1`` ... ``csat_rate_5`` (unique within their block).
CSAT_RATE = "csat_rate_"

# Forms (view callback ids).
FORM_DEAL_NEW = "deal_new"
FORM_LOG_NOTE = "log_note"
FORM_FOLLOW_UP = "follow_up"
FORM_LOG_MESSAGE = "log_message"
FORM_FORGET = "forget_customer"

# Type-ahead menus (external select option loaders).
OPTIONS_CUSTOMER = "customer_options"
OPTIONS_DEAL = "deal_options"

# The message shortcut "Log to CRM".
SHORTCUT_LOG = "log_to_crm"
