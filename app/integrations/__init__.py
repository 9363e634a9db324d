"""Signed device and operator integrations: registration, pushed records, CSV imports."""
