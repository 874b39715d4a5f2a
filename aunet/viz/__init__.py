"""Plots (figures/ is regenerated from these functions) and interactive widgets."""
