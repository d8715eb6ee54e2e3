"""Discrete-event simulation on the same policies as the live platform."""
