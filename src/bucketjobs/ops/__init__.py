"""Job types: each module answers the same small protocol (see base.py)."""
