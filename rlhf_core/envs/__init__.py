"""Environments: making them, scripted behaviours, recorded episodes and their segments, clips."""
