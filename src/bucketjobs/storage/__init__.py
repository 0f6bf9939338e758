"""Talking to S3-compatible stores: clients, listings, retries, components, embedded SeaweedFS."""
