"""HTTP client of the Flotilla control plane."""

from flotilla.client.http import ApiError, FlotillaClient, ServerUnavailable, default_server_url

__all__ = ["ApiError", "FlotillaClient", "ServerUnavailable", "default_server_url"]
