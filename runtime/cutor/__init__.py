"""Cutor: run untrusted code in Docker sandboxes with Nix-built environments."""
