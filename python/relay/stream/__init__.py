"""The SSE relay: upstream events to the client, one by one, with a commit point."""
