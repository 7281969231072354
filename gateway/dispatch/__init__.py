"""Calls to model services through the scheduler, and the generic proxy."""
