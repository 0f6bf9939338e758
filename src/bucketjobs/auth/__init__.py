"""Identity: password hashes, signed tokens, CSRF, permissions and users."""
