"""The attempt loop: send the exchange along routing's plan until a provider answers."""

from relay.forward.loop import AttemptLoop, JsonAnswer

__all__ = ["AttemptLoop", "JsonAnswer"]
