"""Health of an rtm deployment: every host and service the inventory implies (``fab status``)."""
