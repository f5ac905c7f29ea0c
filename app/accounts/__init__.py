"""Agencies, officers, accounts and roles."""
