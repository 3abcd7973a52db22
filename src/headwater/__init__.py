"""Headwater: chatbots, chatflows, workflows and agents behind several API dialects."""

__version__ = "0.1.0"
