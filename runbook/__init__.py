"""Run operational Markdown playbooks step by step in one persistent shell."""

__version__ = "0.1.0"
