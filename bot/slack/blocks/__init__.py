"""Block Kit rendering: data from the services in, Slack payloads out, one module per thing shown.

- ``base``: the building blocks (sections, buttons, messages, error replies, paging) and
  Slack's limits
- ``customers``: search results, the customer card, the timeline
- ``deals``: deal lines, deal lists, the pipeline report
- ``followups``: follow-up lines and lists with their buttons
- ``insights``: customers at risk, segment sizes
- ``forms``: the modals (new deal, log note, follow up, "Log to CRM") and type-ahead options
- ``home``: the App Home tab
- ``help``: the ``/crm help`` reply
- ``digests``: a digest as Slack messages

Listeners (``bot.handlers``) and the digest sender import the functions they show; nothing
here reads the store or calls Slack.
"""
