"""Renderers of a verdict: text, json, github, junit, sarif."""
