"""Sandbox containers: Docker options, the supervisor protocol, phase reports."""
