"""Webhooks: Podium's events POSTed, signed, to the endpoints gateways and hosts register."""
