"""Watchlists and signed webhooks (docs/webhooks.md): which events a new score gives (`events`), how a
delivery is signed (`signing`), which URLs may be called (`safety`), the dispatcher that empties the
store's outbox (`dispatcher`) and its configuration (`settings`)."""
