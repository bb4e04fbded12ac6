"""What goes wrong with weights: not found, a checksum that differs from the card, a Hub that cannot be reached."""

from __future__ import annotations

__all__ = ["HubConnectionError", "WeightsChecksumError", "WeightsNotFoundError"]


class WeightsNotFoundError(FileNotFoundError):
    """The weights are in none of the places looked at; the message lists them and how to get the file."""


class WeightsChecksumError(ValueError):
    """A weights file whose sha256 differs from its card's: never loaded."""


class HubConnectionError(ConnectionError):
    """The Hugging Face Hub could not be reached (no network, offline mode, proxy, DNS): nothing was changed there."""
