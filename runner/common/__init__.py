"""Plumbing shared by every edge: file locks, no-follow reads, logging set-up."""
